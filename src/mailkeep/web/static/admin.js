// The administration pages: a dashboard (service status, stores, processes) and every catalog
// function the session's role may call, each with a form made from its declaration, run with
// live progress (long-polled status) and a cancel button. Loaded only when asked for.
// Results are shown as text (JSON), never as HTML.

const WORDS = {
  en: {
    admin: "Administration", dashboard: "Dashboard", functions: "Functions", archive: "Archive",
    status: "Service status", stores: "Stores", processes: "Running processes", none: "None.",
    version: "Version", uptime: "Up for", disk: "Free disk space", warnings: "Warnings",
    fn: "Function", run: "Run", cancel: "Cancel", result: "Result", log: "Log",
    filter: "Find a function", notAllowed: "Your role may not call this function.", unavailable: "not for your role",
    running: "Running", state: "State", name: "Name", id: "Id", messages: "Messages", size: "Size",
    path: "Path", refresh: "Refresh", seconds: "s", user: "User", since: "Started", progress: "Progress",
    actions: "Actions", VerifyStore: "Verify", CompactStore: "Compact", RebuildStoreIndex: "Rebuild index", IndexAttachmentText: "Read attachments",
    readAttachments: (n, c) => `${n} messages read, ${c} with text inside attachments`,
    newStore: "New store", create: "Create", done: "Done", clean: "no problems", problems: "problems",
    users: "Users", fullName: "Full name", privileges: "Privileges", role: "Role", apply: "Apply",
    setPassword: "Set", newPassword: "New password for", delete: "Delete", deleted: "Deleted.",
    newUser: "New user", settings: "Settings", reset: "Reset", default: "default",
    nextStart: "(the server uses it from its next start)",
    audit: "Audit log", actor: "User or actor", action: "Event", from: "From", to: "To",
    show: "Show", csv: "Download as CSV", when: "When", details: "Details",
    older: "Older", newer: "Newer", records: (a, b, n) => `${a}–${b} of ${n}`,
    mail: "Notification mail", save: "Save", saved: "Saved.", testMail: "Send test mail",
    password: "password", keep: "(unchanged if left empty)",
    profiles: "Profiles", jobs: "Jobs", RecoverStore: "Recover", detach: "Detach", attach: "Attach a store",
    storePath: "Directory", storeState: "State of", confirmDetach: (n) => `Detach store ${n}? Its directory stays as it is.`,
    unsent: "Notifications not yet mailed", recent: "Recent results (24 hours)", profileRuns: "Archiving profiles",
    jobRuns: "Jobs", edit: "Edit", close: "Close", details: "Details", emails: "Email addresses",
    commaList: "several separated by commas", folderRights: "Folder rights", folder: "Folder",
    grant: "Grant", remove: "Remove", userOf: (n) => `User ${n}`, read: "Read", write: "Write",
    sendVia: "Send", shape_connection: "Through a named connection", shape_None: "SMTP server, no authentication",
    shape_SMTP: "SMTP server, SMTP authentication", "shape_POP before SMTP": "SMTP server, POP before SMTP",
    connections: "Named connections", newConnection: "New connection", type: "Type", server: "Server", port: "Port",
    security: "Security", authentication: "Authentication", userName: "User name",
    verifyChain: "Verify the hash chain", chainOk: "The audit log's hash chain is intact", chainBroken: "The audit log's hash chain is broken",
    compliance: "Compliance",
    applyRole: (n) => `Apply the role to ${n}`, setPasswordOf: (n) => `Set the password of ${n}`,
    ownRole: "Change your own role? If it is not administrator, you will no longer administer in the console.",
    byPrivilege: "— (admin privilege)", passwordLabel: "Password", setting: "Setting", value: "Value", kindOf: "Kind",
    attachButton: "Attach", counted: (a, d, f) => `${a} archived, ${d} already archived, ${f} failed`,
  },
  ja: {
    admin: "管理", dashboard: "ダッシュボード", functions: "機能", archive: "アーカイブ",
    status: "サービスの状態", stores: "ストア", processes: "実行中の処理", none: "ありません。",
    version: "バージョン", uptime: "稼働時間", disk: "ディスクの空き", warnings: "警告",
    fn: "機能", run: "実行", cancel: "取り消し", result: "結果", log: "ログ",
    filter: "機能を探す", notAllowed: "このロールでは呼び出せません。", unavailable: "このロールでは不可",
    running: "実行中", state: "状態", name: "名前", id: "ID", messages: "メッセージ", size: "サイズ",
    path: "パス", refresh: "再読み込み", seconds: "秒", user: "ユーザー", since: "開始", progress: "進行状況",
    actions: "操作", VerifyStore: "検証", CompactStore: "圧縮", RebuildStoreIndex: "索引の再構築", IndexAttachmentText: "添付ファイルの読み込み",
    readAttachments: (n, c) => `${n} 件のメッセージを読み込み、うち ${c} 件の添付ファイルに本文あり`,
    newStore: "新しいストア", create: "作成", done: "完了", clean: "問題なし", problems: "件の問題",
    users: "ユーザー", fullName: "氏名", privileges: "権限", role: "ロール", apply: "適用",
    setPassword: "設定", newPassword: "新しいパスワード:", delete: "削除", deleted: "削除しました。",
    newUser: "新しいユーザー", settings: "設定", reset: "既定に戻す", default: "既定値",
    nextStart: "(次回のサーバー起動から有効)",
    audit: "監査ログ", actor: "ユーザー", action: "イベント", from: "開始日", to: "終了日",
    show: "表示", csv: "CSV でダウンロード", when: "日時", details: "詳細",
    older: "古い記録", newer: "新しい記録", records: (a, b, n) => `${a}–${b} / ${n}`,
    mail: "通知メール", save: "保存", saved: "保存しました。", testMail: "テストメールを送信",
    password: "パスワード", keep: "(空欄なら変更しません)",
    profiles: "プロファイル", jobs: "ジョブ", RecoverStore: "復旧", detach: "切り離し", attach: "ストアの接続",
    storePath: "ディレクトリ", storeState: "状態:", confirmDetach: (n) => `ストア ${n} を切り離しますか? ディレクトリはそのまま残ります。`,
    unsent: "未送信の通知", recent: "最近の結果 (24 時間)", profileRuns: "アーカイブ プロファイル",
    jobRuns: "ジョブ", edit: "編集", close: "閉じる", details: "詳細", emails: "メールアドレス",
    commaList: "複数はカンマ区切り", folderRights: "フォルダーの権限", folder: "フォルダー",
    grant: "付与", remove: "削除", userOf: (n) => `ユーザー ${n}`, read: "読み取り", write: "書き込み",
    sendVia: "送信方法", shape_connection: "名前付き接続を使う", shape_None: "SMTP サーバー (認証なし)",
    shape_SMTP: "SMTP サーバー (SMTP 認証)", "shape_POP before SMTP": "SMTP サーバー (POP before SMTP)",
    connections: "名前付き接続", newConnection: "新しい接続", type: "種類", server: "サーバー", port: "ポート",
    security: "セキュリティ", authentication: "認証", userName: "ユーザー名",
    verifyChain: "ハッシュチェーンを検証", chainOk: "監査ログのハッシュチェーンは正常です", chainBroken: "監査ログのハッシュチェーンが壊れています",
    compliance: "コンプライアンス",
    applyRole: (n) => `${n} にロールを適用`, setPasswordOf: (n) => `${n} のパスワードを設定`,
    ownRole: "自分のロールを変更しますか? administrator 以外にすると、コンソールで管理できなくなります。",
    byPrivilege: "— (admin 権限)", passwordLabel: "パスワード", setting: "設定項目", value: "値", kindOf: "種類",
    attachButton: "接続", counted: (a, d, f) => `${a} 件取り込み, ${d} 件は取り込み済み, ${f} 件失敗`,
  },
};

const lines = (text) => String(text).replace(/\r\n?/g, "\n");

const STATES = ["current", "normal", "writeProtected", "disabled"];

export async function renderAdmin(ui) {
  const { el, api, guarded, visible, human, lang, app, back } = ui;
  const w = (key) => WORDS[lang][key] ?? WORDS.en[key];
  const main = el("main", { class: "admin" });
  const tabs = el("nav", { class: "tabs", "aria-label": w("admin") });
  const bar = el("header", { class: "bar" }, el("h1", {}, `mailkeep · ${w("admin")}`),
    el("button", { type: "button", class: "who", onclick: back }, w("archive")));
  app.replaceChildren(bar, tabs, main);
  // Everything the pages need is loaded before the first tab is drawn: a tab clicked while a
  // module was still loading would be painted over by the dashboard shown after it.
  const [listing, { workPages, ZONE, span, when }, { compliancePages }] = await Promise.all([
    guarded(() => api("function/list")), import("./admin-work.js"), import("./admin-compliance.js")]);
  if (!listing) return;
  const every = new Map(listing.functions.map((f) => [f.name, f]));
  const byName = new Map(listing.functions.filter((f) => f.allowed).map((f) => [f.name, f]));

  // A page painted after an answer came paints only if it is still the page asked for (the
  // reader may have gone to another tab meanwhile).
  let shownAt = 0;
  const current = () => { const at = shownAt; return () => at === shownAt; };
  const show = (which) => {
    shownAt += 1;
    for (const b of tabs.querySelectorAll("button")) b.setAttribute("aria-pressed", String(b.dataset.tab === which));
    if (which === "dashboard") dashboard(); else if (which === "audit") auditPage();
    else if (which === "mail") mailPage(); else if (which === "users") usersPage();
    else if (which === "settings") settingsPage(); else if (which === "profiles") work.profilesPage();
    else if (which === "jobs") work.jobsPage(); else if (which === "compliance") comp.compliancePage(); else functionsPage();
  };
  tabs.replaceChildren(
    el("button", { type: "button", "data-tab": "dashboard", onclick: () => show("dashboard") }, w("dashboard")),
    el("button", { type: "button", "data-tab": "functions", onclick: () => show("functions") }, w("functions")),
    byName.has("GetSettings") ? el("button", { type: "button", "data-tab": "settings", onclick: () => show("settings") }, w("settings")) : null,
    byName.has("GetUsers") ? el("button", { type: "button", "data-tab": "users", onclick: () => show("users") }, w("users")) : null,
    byName.has("GetProfiles") ? el("button", { type: "button", "data-tab": "profiles", onclick: () => show("profiles") }, w("profiles")) : null,
    byName.has("GetJobs") ? el("button", { type: "button", "data-tab": "jobs", onclick: () => show("jobs") }, w("jobs")) : null,
    byName.has("GetSmtpSettings") ? el("button", { type: "button", "data-tab": "mail", onclick: () => show("mail") }, w("mail")) : null,
    byName.has("GetComplianceConfiguration") ? el("button", { type: "button", "data-tab": "compliance", onclick: () => show("compliance") }, w("compliance")) : null,
    byName.has("GetAuditLog") ? el("button", { type: "button", "data-tab": "audit", onclick: () => show("audit") }, w("audit")) : null);
  // Run a page's render again, then give the focus back to the control that had it (found by
  // its accessible name or id), so that a keyboard user stays where they were.
  async function redraw(draw) {
    const had = document.activeElement;
    const name = had?.getAttribute?.("aria-label");
    const id = had?.id;
    await draw();
    const again = (name && main.querySelector(`[aria-label="${CSS.escape(name)}"]`)) || (id && document.getElementById(id));
    if (again && again !== document.body) again.focus();
  }
  const work = workPages({ el, visible, lines, lang, call, follow, byName, every, main, user: ui.user, redraw, current });
  const comp = compliancePages({ el, visible, lang, call, byName, main, redraw, current, when, user: ui.user });
  show("dashboard");

  async function call(name, args = {}) {
    if (!byName.has(name)) throw new Error(`${name}: ${w("notAllowed")}`);
    let snap = await guarded(() => api("function/invoke", { name, args }));
    while (snap && snap.statusCode === "running") {
      snap = await guarded(() => api("function/status", { token: snap.token, lastKnownStatusVersion: snap.statusVersion, millisecondsTimeout: 30000 }));
    }
    if (snap && snap.statusCode !== "succeeded") throw new Error(snap.error?.message || snap.statusCode);
    return snap?.result;
  }

  let followTimer = null;

  async function dashboard() {
    const still = current();
    if (!main.children.length) main.replaceChildren(el("p", { class: "muted" }, "…"));
    const sections = [];
    let running = [];
    try {
      const info = await call("GetServiceStatus");
      if (info) {
        sections.push(el("section", { class: "card", "aria-label": w("status") }, el("h2", {}, w("status")),
          el("dl", { class: "headers" },
            el("dt", {}, w("version")), el("dd", {}, visible(info.version)),
            el("dt", {}, w("uptime")), el("dd", {}, `${info.uptimeSeconds} ${w("seconds")}`),
            el("dt", {}, w("disk")), el("dd", {}, `${human(info.diskSpace.freeBytes)} / ${human(info.diskSpace.totalBytes)}`),
            el("dt", {}, w("unsent")), el("dd", {}, String(info.unsentNotifications?.count ?? 0))),
          info.warnings.length ? el("ul", { class: "warning" }, info.warnings.map((x) => el("li", {}, visible(typeof x === "string" ? x : JSON.stringify(x))))) : null));
      }
      const stores = await call("GetStores", { includeSize: true });
      if (stores) {
        const newName = el("input", { id: "new-store", type: "text" });
        const created = el("p", { role: "alert", class: "error" });
        const attachName = el("input", { id: "attach-name", type: "text" });
        const attachPath = el("input", { id: "attach-path", type: "text", placeholder: "/srv/mailkeep/stores/2019" });
        sections.push(el("section", { class: "card", "aria-label": w("stores") }, el("h2", {}, w("stores")),
          el("table", { class: "list" },
            el("thead", {}, el("tr", {}, [w("id"), w("name"), w("state"), w("messages"), w("size"), w("path"), w("actions")].map((h) => el("th", {}, h)))),
            el("tbody", {}, stores.map((s) => el("tr", {},
              el("td", {}, String(s.id)), el("td", {}, visible(s.name)),
              el("td", {}, el("select", { "aria-label": `${w("storeState")} ${visible(s.name)}`, "data-store": s.id, disabled: !byName.has("SetStoreRequestedState"),
                onchange: async (ev) => {
                  // in place: a store's running verify or recovery keeps its progress
                  try {
                    await call("SetStoreRequestedState", { id: s.id, requestedState: ev.target.value });
                    for (const now of await call("GetStores") ?? []) {
                      const pick = main.querySelector(`select[data-store="${now.id}"]`);
                      if (pick) pick.value = now.requestedState;
                    }
                  } catch (err) { created.textContent = err.message; ev.target.value = s.requestedState; }
                } }, STATES.map((x) => el("option", { value: x, selected: x === s.requestedState }, x)))),
              el("td", {}, s.statisticsCount ?? "–"), el("td", {}, s.statisticsSize == null ? "–" : human(s.statisticsSize)),
              el("td", { class: "path" }, visible(s.databasePath)),
              el("td", { class: "store-actions" }, ["VerifyStore", "CompactStore", "RebuildStoreIndex", "IndexAttachmentText", "RecoverStore"].filter((f) => every.has(f))
                .map((f) => el("button", { type: "button", class: "small", "aria-label": `${w(f)} ${visible(s.name)}`,
                  disabled: !byName.has(f), title: byName.has(f) ? null : w("notAllowed"),
                  onclick: (ev) => storeAction(f, s, ev.target.closest("td")) }, w(f))),
                every.has("DetachStore") ? el("button", { type: "button", class: "small", "aria-label": `${w("detach")} ${visible(s.name)}`,
                  disabled: !byName.has("DetachStore"), title: byName.has("DetachStore") ? null : w("notAllowed"), onclick: async () => {
                    if (!window.confirm(w("confirmDetach")(visible(s.name)))) return;
                    try { await call("DetachStore", { id: s.id }); redraw(dashboard); } catch (err) { created.textContent = err.message; }
                  } }, w("detach")) : null))))),
          byName.has("CreateStore") ? el("form", { class: "inline", onsubmit: async (ev) => {
            ev.preventDefault();
            try { await call("CreateStore", { name: newName.value }); redraw(dashboard); }
            catch (err) { created.textContent = err.message; }
          } }, el("label", { for: "new-store" }, w("newStore")), newName,
            el("button", { type: "submit" }, w("create"))) : null,
          byName.has("AttachStore") ? el("form", { class: "inline", onsubmit: async (ev) => {
            ev.preventDefault();
            try { await call("AttachStore", { name: attachName.value, type: "FileSystemInternal", databasePath: attachPath.value, requestedState: "normal" }); redraw(dashboard); }
            catch (err) { created.textContent = err.message; }
          } }, el("fieldset", { class: "inline" }, el("legend", {}, w("attach")),
            el("label", { for: "attach-name" }, w("name")), attachName,
            el("label", { for: "attach-path" }, w("storePath")), attachPath,
            el("button", { type: "submit" }, w("attachButton")))) : null, created));
      }
      running = info?.jobs ?? [];
      sections.push(processesCard(running));
      sections.push(await recentResults());
    } catch (err) {
      sections.push(el("p", { role: "alert", class: "error" }, err.message));
    }
    if (!still()) return;
    main.replaceChildren(el("button", { type: "button", onclick: () => redraw(dashboard) }, w("refresh")), ...sections);
    if (running.length) followProcesses();
  }

  // While something runs, the dashboard follows it every 2 s, as long as it is shown: the
  // processes and the recent results only (a store's own progress and outcome stay put).
  function followProcesses() {
    clearTimeout(followTimer);
    const shown = main.firstChild;
    followTimer = setTimeout(async () => {
      if (!shown.isConnected || tabs.querySelector('[data-tab="dashboard"]')?.getAttribute("aria-pressed") !== "true") return;
      let info;
      try { info = await call("GetServiceStatus"); } catch { return; }
      if (!info || !shown.isConnected) return;
      const swap = async (label, fresh) => main.querySelector(`section[aria-label="${label}"]`)?.replaceWith(await fresh);
      await swap(w("processes"), processesCard(info.jobs));
      await swap(w("recent"), recentResults());
      if (info.jobs.length) followProcesses();
    }, 2000);
  }

  function processesCard(running) {
    return el("section", { class: "card", "aria-label": w("processes") }, el("h2", {}, w("processes")),
        running.length ? el("table", { class: "list" },
          el("thead", {}, el("tr", {}, [w("fn"), w("user"), w("since"), w("progress")].map((h) => el("th", {}, h)))),
          el("tbody", {}, running.map((j) => el("tr", {},
            el("td", {}, visible(j.function)), el("td", {}, visible(j.user)),
            el("td", {}, `${visible(j.startedAt)} (${j.runningSeconds} ${w("seconds")})`),
            el("td", {}, j.percentProgress == null ? el("progress", { "aria-label": visible(j.function) })
              : el("progress", { max: 100, value: j.percentProgress, "aria-label": visible(j.function) }),
              j.percentProgress == null ? "" : ` ${j.percentProgress}%`))))) : el("p", { class: "muted" }, w("none")));
  }

  // What the archiving profiles and the jobs did in the last 24 hours, newest first.
  async function recentResults() {
    const day = span(24);
    const [runs, jobs] = await Promise.all([call("GetWorkerResults", { ...day, timeZoneID: ZONE }), call("GetJobResults", { ...day, timeZoneId: ZONE })]);
    const rows = [
      ...(runs ?? []).map((r) => [r.startTime, w("profileRuns"), r.profileName, r.result,
        r.error ?? w("counted")(r.itemsArchived, r.itemsDuplicate, r.itemsFailed)]),
      ...(jobs ?? []).map((r) => [r.startTime, w("jobRuns"), r.jobName, r.result, r.error ?? ""]),
    ].sort((a, b) => String(b[0]).localeCompare(String(a[0]))).slice(0, 20);
    return el("section", { class: "card", "aria-label": w("recent") }, el("h2", {}, w("recent")),
      rows.length ? el("table", { class: "list" },
        el("thead", {}, el("tr", {}, [w("when"), w("kindOf"), w("name"), w("result"), w("details")].map((h) => el("th", {}, h)))),
        el("tbody", {}, rows.map(([started, kind, name, result, more]) => el("tr", {},
          el("td", {}, when(started)), el("td", {}, kind), el("td", {}, visible(name)), el("td", {}, result), el("td", {}, visible(more))))))
        : el("p", { class: "muted" }, w("none")));
  }

  // The error-notification mail in its three shapes (through a named connection; an SMTP
  // server with no authentication, SMTP AUTH, or POP before SMTP): the fields of the shape
  // chosen, saved with SetSmtpSettings (only what changed; the password write-only); the test
  // mail's log says which step failed. Below, the named connections.
  async function mailPage() {
    const still = current();
    let conf, connections;
    try {
      [conf, connections] = await Promise.all([call("GetSmtpSettings"), call("GetConnections").then((c) => c?.connections ?? [])]);
    } catch (err) { if (still()) main.replaceChildren(el("p", { role: "alert", class: "error" }, err.message)); return; }
    if (!conf || !still()) return;
    const COMMON = ["fromMailAddress", "toMailAddress", "mailSubject", "encoding"];
    const SERVER = ["serverName", "port", "useSmtpOverSsl", "useStartTls", "timeOut"];
    const SHAPES = {
      connection: ["connection", ...COMMON],
      None: [...SERVER, ...COMMON],
      SMTP: [...SERVER, "userName", "smtpAuthenticationType", "password", ...COMMON],
      "POP before SMTP": [...SERVER, "pop3ServerName", "pop3Port", "usePopOverSsl", "userStartTlsForPop", "useApop", "pop3Interval", "userName", "password", ...COMMON],
    };
    const BOOLS = new Set(["useSmtpOverSsl", "useStartTls", "usePopOverSsl", "userStartTlsForPop", "useApop"]);
    const NUMBERS = new Set(["port", "timeOut", "pop3Port", "pop3Interval"]);
    const CHOICES = { encoding: ["utf-8", "iso-2022-jp", "iso-8859-1", "us-ascii"], smtpAuthenticationType: ["plain", "login", "cram-md5", "xoauth2"],
      connection: connections.filter((c) => c.type === "smtp").map((c) => c.name) };
    const shapeOf = (c) => ("connection" in c ? "connection" : c.authenticationType || "None");
    const shape = el("select", { id: "mail-shape" }, Object.keys(SHAPES).map((s) => el("option", { value: s, selected: s === shapeOf(conf) }, w(`shape_${s}`))));
    const inputs = new Map();
    const all = [...new Set(Object.values(SHAPES).flat())];
    const rows = new Map(all.map((name) => {
      const id = `mail-${name}`;
      const value = conf[name];
      let input;
      if (CHOICES[name]) input = el("select", { id }, (value == null ? [el("option", { value: "" }, "")] : []).concat(CHOICES[name].map((c) => el("option", { value: c, selected: c === value }, c))));
      else if (BOOLS.has(name)) input = el("input", { id, type: "checkbox", checked: Boolean(value) });
      else if (name === "password") input = el("input", { id, type: "password", autocomplete: "new-password" });
      else input = el("input", { id, type: NUMBERS.has(name) ? "number" : "text", value: value ?? "" });
      inputs.set(name, input);
      const label = name === "password" ? `${w("password")} ${w("keep")}` : name;
      return [name, el("div", { class: "arg" }, el("label", { for: id }, label), input)];
    }));
    // only the fields of the shape chosen are in the page (their values kept while hidden)
    const fields = el("div");
    const arrange = () => fields.replaceChildren(...SHAPES[shape.value].map((n) => rows.get(n)));
    shape.addEventListener("change", arrange);
    arrange();
    const status = el("p", { role: "status" });
    const logBox = el("pre", { class: "source", "aria-label": w("log") });
    const mayChange = byName.has("SetSmtpSettings");
    const form = el("form", { class: "fn-form", onsubmit: async (ev) => {
      ev.preventDefault();
      const settings = {};
      for (const name of SHAPES[shape.value]) {
        const input = inputs.get(name);
        if (name === "password") { if (input.value) settings.password = input.value; continue; }
        const value = BOOLS.has(name) ? input.checked : NUMBERS.has(name) ? (input.value === "" ? null : Number(input.value)) : input.value || null;
        if (value === null && conf[name] == null) continue;
        if (value !== conf[name]) settings[name] = value;
      }
      if (shape.value !== "connection" && shape.value !== shapeOf(conf)) settings.authenticationType = shape.value;
      if (shape.value === "connection" && !settings.connection && shapeOf(conf) !== "connection") settings.connection = inputs.get("connection").value;
      status.textContent = "";  // what was said of the last change is not said of this one
      try {
        await call("SetSmtpSettings", { settings });
        inputs.get("password").value = "";
        conf = await call("GetSmtpSettings");
        status.textContent = w("saved");
      } catch (err) { status.textContent = err.message; }
    } }, el("div", { class: "arg" }, el("label", { for: "mail-shape" }, w("sendVia")), shape), fields,
      el("div", { class: "actions" }, el("button", { type: "submit", class: "primary", disabled: !mayChange }, w("save")),
        el("button", { type: "button", disabled: !byName.has("TestSmtpSettings"), onclick: async () => {
          status.textContent = w("running");
          logBox.textContent = "";
          let snap;
          try {
            snap = await guarded(() => api("function/invoke", { name: "TestSmtpSettings", args: {} }));
            while (snap) {
              if (snap.logOutput) logBox.textContent += visible(lines(snap.logOutput));
              if (snap.statusCode !== "running") break;
              snap = await guarded(() => api("function/status", { token: snap.token, lastKnownStatusVersion: snap.statusVersion, millisecondsTimeout: 30000 }));
            }
          } catch (err) { status.textContent = err.message; return; }
          if (!snap) return;
          status.textContent = snap.statusCode === "succeeded" ? `${snap.statusCode}: ${visible(snap.result?.summary ?? "")}`
            : `${snap.statusCode}: ${visible(snap.error?.message ?? "")}`;
        } }, w("testMail"))),
      status);
    main.replaceChildren(el("h2", {}, w("mail")), form, logBox, connectionsCard(connections, status));
  }

  // The named SMTP and POP3 connections (GetConnections; passwords never shown); a new one,
  // or one deleted. `say`: the page's status.
  function connectionsCard(connections, say) {
    const f = (id, label, input) => el("div", { class: "arg" }, el("label", { for: id }, label), input);
    const name = el("input", { id: "conn-name", type: "text" });
    const type = el("select", { id: "conn-type" }, ["smtp", "pop3"].map((x) => el("option", { value: x }, x)));
    const server = el("input", { id: "conn-server", type: "text" });
    const port = el("input", { id: "conn-port", type: "number" });
    const security = el("select", { id: "conn-security" }, ["starttls", "implicit", "none"].map((x) => el("option", { value: x }, x)));
    const auth = el("select", { id: "conn-auth" }, ["none", "plain", "login", "cram-md5", "xoauth2", "user", "apop"].map((x) => el("option", { value: x }, x)));
    const userName = el("input", { id: "conn-user", type: "text", autocomplete: "off" });
    const password = el("input", { id: "conn-password", type: "password", autocomplete: "new-password" });
    return el("section", { class: "card", "aria-label": w("connections") }, el("h2", {}, w("connections")),
      connections.length ? el("table", { class: "list" },
        el("thead", {}, el("tr", {}, [w("name"), w("type"), w("server"), w("port"), w("security"), w("authentication"), w("userName"), w("actions")].map((h) => el("th", {}, h)))),
        el("tbody", {}, connections.map((c) => el("tr", {},
          [c.name, c.type, c.serverName, String(c.port), c.security, c.authentication, c.userName ?? ""].map((v) => el("td", {}, visible(v))),
          el("td", {}, el("button", { type: "button", class: "small", disabled: !byName.has("DeleteConnection"), "aria-label": `${w("delete")} ${visible(c.name)}`,
            onclick: async () => {
              if (!window.confirm(`${w("delete")} ${visible(c.name)}?`)) return;
              try { await call("DeleteConnection", { name: c.name }); redraw(mailPage); } catch (err) { say.textContent = err.message; }
            } }, w("delete"))))))) : el("p", { class: "muted" }, w("none")),
      byName.has("CreateConnection") ? el("form", { class: "fn-form", "aria-label": w("newConnection"), onsubmit: async (ev) => {
        ev.preventDefault();
        const args = { name: name.value, type: type.value, serverName: server.value, security: security.value, authentication: auth.value };
        if (port.value) args.port = Number(port.value);
        if (userName.value) args.userName = userName.value;
        if (password.value) args.password = password.value;
        try { await call("CreateConnection", args); redraw(mailPage); } catch (err) { say.textContent = err.message; }
      } }, el("h3", {}, w("newConnection")), f("conn-name", w("name"), name), f("conn-type", w("type"), type), f("conn-server", w("server"), server),
        f("conn-port", w("port"), port), f("conn-security", w("security"), security), f("conn-auth", w("authentication"), auth),
        f("conn-user", w("userName"), userName), f("conn-password", w("passwordLabel"), password),
        el("div", { class: "actions" }, el("button", { type: "submit" }, w("create")))) : null);
  }

  // A long-running call followed in `cell`: a progress bar, a cancel button and its outcome
  // (which stays); answers the last snapshot and the outcome's element.
  async function follow(name, args, cell, label) {
    cell.querySelector(".outcome")?.remove();
    const bar = el("progress", { max: 100, "aria-label": label });
    const stop = el("button", { type: "button", class: "small" }, w("cancel"));
    const said = el("span", { class: "outcome", role: "status" });
    cell.append(el("div", { class: "outcome" }, bar, stop, said));
    let snap = await guarded(() => api("function/invoke", { name, args })).catch((err) => ({ statusCode: "failed", error: { message: err.message } }));
    stop.addEventListener("click", () => snap?.token && api("function/cancel", { token: snap.token }));
    if (snap?.statusCode === "running") followProcesses();
    while (snap && snap.statusCode === "running") {
      if (snap.percentProgress != null) bar.value = snap.percentProgress;
      if (snap.statusText) said.textContent = visible(snap.statusText);
      snap = await guarded(() => api("function/status", { token: snap.token, lastKnownStatusVersion: snap.statusVersion, millisecondsTimeout: 30000 }));
    }
    bar.remove(); stop.remove();
    if (snap) said.textContent = snap.statusCode === "succeeded" ? w("done") : `${snap.statusCode}: ${visible(snap.error?.message ?? "")}`;
    return { snap, said };
  }

  // A store's verify, compaction, index rebuild or recovery, run here with its progress and a
  // cancel button; its outcome stays beside the buttons.
  async function storeAction(name, store, cell) {
    const args = name === "VerifyStore" ? { id: store.id, report: true } : { id: store.id };
    const { snap, said } = await follow(name, args, cell, `${w(name)} ${visible(store.name)}`);
    if (snap?.statusCode !== "succeeded") return;
    if (name === "IndexAttachmentText") {
      said.textContent = `${w("done")}: ${w("readAttachments")(snap.result.messages, snap.result.changed)}`;
      return;
    }
    const report = name === "RecoverStore" ? snap.result : snap.result?.stores?.[0];
    if (report) said.textContent = `${w("done")}: ${report.messages} ${w("messages").toLowerCase()}, ${report.ok ?? !report.problems.length ? w("clean") : `${report.problems.length} ${w("problems")}`}`;
  }

  // Accounts: who they are, their privileges and role; a new password, a role, deletion; a
  // new account; and, one at a time, the details: full name, email addresses, privileges and
  // the rights on other archives' folders.
  async function usersPage(note = "") {
    const box = el("div");
    const detail = el("div");
    const say = el("p", { role: "status" }, note);
    main.replaceChildren(say, box, detail);
    let names;
    try { names = await call("GetUsers"); } catch (err) { say.textContent = err.message; return; }
    if (!names) return;
    const infos = await Promise.all(names.slice(0, 200).map((u) => call("GetUserInfo", { userName: u.userName }).catch(() => null)));
    const roles = ["", "administrator", "developer", "operator"];
    const rows = infos.filter(Boolean).map((u) => {
      const password = el("input", { type: "password", autocomplete: "new-password", "aria-label": `${w("newPassword")} ${visible(u.userName)}` });
      const may = (fn) => byName.has(fn);
      const role = el("select", { "aria-label": `${w("role")} ${visible(u.userName)}`, disabled: !may("SetUserRole") },
        roles.map((r) => el("option", { value: r, selected: (u.role || "") === r },
          r || (u.privileges.includes("admin") ? w("byPrivilege") : "—"))));
      const act = async (fn, args, done) => {
        say.textContent = "";  // what was said of the last change is not said of this one
        try { await call(fn, { userName: u.userName, ...args }); say.textContent = done; }
        catch (err) { say.textContent = err.message; }
      };
      return el("tr", {},
        el("td", {}, visible(u.userName)), el("td", {}, visible(u.fullName || "")),
        el("td", {}, visible(u.privileges.join(", "))),
        el("td", {}, role, el("button", { type: "button", class: "small", disabled: !may("SetUserRole"), "aria-label": w("applyRole")(visible(u.userName)),
          onclick: () => {
            if (u.userName.toLowerCase() === String(ui.user).toLowerCase() && !window.confirm(w("ownRole"))) return;
            act("SetUserRole", { role: role.value }, w("saved"));
          } }, w("apply"))),
        el("td", {}, password, el("button", { type: "button", class: "small", disabled: !may("SetUserPassword"), "aria-label": w("setPasswordOf")(visible(u.userName)), onclick: async () => {
          if (!password.value) return;
          await act("SetUserPassword", { password: password.value }, w("saved"));
          password.value = "";
        } }, w("setPassword"))),
        el("td", {}, el("button", { type: "button", class: "small", "aria-label": `${w("edit")} ${visible(u.userName)}`,
          onclick: () => userDetail(u, detail, say) }, w("edit")),
        el("button", { type: "button", class: "small", "aria-label": `${w("delete")} ${visible(u.userName)}`, disabled: !byName.has("DeleteUser"), onclick: async () => {
          if (!window.confirm(`${w("delete")} ${visible(u.userName)}?`)) return;
          try { await call("DeleteUser", { userName: u.userName }); redraw(() => usersPage(w("deleted"))); }
          catch (err) { say.textContent = err.message; }
        } }, w("delete"))));
    });
    const name = el("input", { id: "new-user", type: "text", autocomplete: "off" });
    const secret = el("input", { id: "new-user-password", type: "password", autocomplete: "new-password" });
    const privileges = ["login", "archive", "admin"].map((p) => el("label", {}, el("input", { type: "checkbox", value: p, checked: p === "login" }), p));
    const privilegeGroup = el("fieldset", { class: "choices inline" }, el("legend", {}, w("privileges")), privileges);
    const create = el("form", { class: "inline", onsubmit: async (ev) => {
      ev.preventDefault();
      const picked = privileges.map((l) => l.querySelector("input")).filter((c) => c.checked).map((c) => c.value);
      try {
        await call("CreateUser", { userName: name.value, password: secret.value, privileges: picked.join(",") || "none" });
        redraw(() => usersPage(w("saved")));
      } catch (err) { say.textContent = err.message; }
    } }, el("label", { for: "new-user" }, w("newUser")), name,
      el("label", { for: "new-user-password" }, w("passwordLabel")), secret, privilegeGroup,
      el("button", { type: "submit" }, w("create")));
    box.replaceChildren(el("section", { class: "card", "aria-label": w("users") }, el("h2", {}, w("users")),
      el("table", { class: "list" },
        el("thead", {}, el("tr", {}, [w("user"), w("fullName"), w("privileges"), w("role"), w("passwordLabel"), w("actions")].map((h) => el("th", {}, h)))),
        el("tbody", {}, rows)), byName.has("CreateUser") ? create : null));
  }

  async function userDetail(u, box, say, opened = true) {
    const refresh = async () => {
      try { u = await call("GetUserInfo", { userName: u.userName }); } catch (err) { say.textContent = err.message; return false; }
      await redraw(() => userDetail(u, box, say, false));
      return true;
    };
    // the calls in order, then the account shown again once, and only then what came of them:
    // "Saved." on a form the redraw is about to replace would invite typing into it
    const act = async (...calls) => {
      say.textContent = "";  // what was said of the last change is not said of this one
      let said;
      try {
        for (const [fn, args] of calls) await call(fn, { userName: u.userName, ...args });
        said = `${visible(u.userName)}: ${w("saved")}`;
      } catch (err) { said = err.message; }
      if (await refresh()) say.textContent = said;
    };
    const ALL = every.get("SetUserPrivileges")?.args.find((a) => a.name === "privileges")?.choices.filter((c) => c !== "none")
      ?? ["admin", "login", "changePassword", "archive", "export", "delete"];
    const fullName = el("input", { id: "ud-fullname", type: "text", value: u.fullName ?? "" });
    const emails = el("input", { id: "ud-emails", type: "text", value: u.emailAddresses.join(", "), "aria-describedby": "ud-emails-hint" });
    const privileges = el("fieldset", { class: "choices" }, el("legend", {}, w("privileges")),
      ALL.map((p) => el("label", {}, el("input", { type: "checkbox", value: p, checked: u.privileges.includes(p) }), p)));
    const rightBoxes = (held, label) => ["read", "write", "delete"].map((p) => el("label", {},
      el("input", { type: "checkbox", value: p, checked: held.includes(p), "aria-label": `${w(p)} ${label}`.trim() }), w(p)));
    const picked = (node) => [...node.querySelectorAll("input:checked")].map((c) => c.value).join(",") || "none";
    const newFolder = el("input", { id: "ud-folder", type: "text", placeholder: `${u.userName}/Inbox` });
    const newRights = el("span", { class: "choices" }, rightBoxes(["read"], w("folder")));
    const may = (fn) => byName.has(fn);
    const title = w("userOf")(visible(u.userName));
    box.replaceChildren(el("section", { class: "card user-detail", "aria-label": title }, el("h2", {}, title),
      el("form", { class: "fn-form", onsubmit: async (ev) => {
        ev.preventDefault();
        const addresses = emails.value.split(",").map((s) => s.trim()).filter(Boolean).join(",");
        const chosen = picked(privileges);
        const changes = [];
        if (fullName.value !== (u.fullName ?? "")) changes.push(["SetUserFullName", { fullName: fullName.value }]);
        if (addresses !== u.emailAddresses.join(",")) changes.push(["SetUserEmailAddresses", { emailAddresses: addresses }]);
        if (chosen !== (u.privileges.join(",") || "none")) changes.push(["SetUserPrivileges", { privileges: chosen }]);
        await act(...changes);
      } },
        el("div", { class: "arg" }, el("label", { for: "ud-fullname" }, w("fullName")), fullName),
        el("div", { class: "arg" }, el("label", { for: "ud-emails" }, w("emails")), emails, el("p", { class: "muted", id: "ud-emails-hint" }, w("commaList"))),
        privileges,
        el("div", { class: "actions" }, el("button", { type: "submit", class: "primary", disabled: !may("SetUserPrivileges") }, w("save")),
          el("button", { type: "button", onclick: () => {
            box.replaceChildren();
            main.querySelector(`[aria-label="${CSS.escape(`${w("edit")} ${visible(u.userName)}`)}"]`)?.focus();
          } }, w("close")))),
      el("h3", {}, w("folderRights")),
      el("table", { class: "list", "aria-label": w("folderRights") },
        el("thead", {}, el("tr", {}, [w("folder"), w("privileges"), ""].map((h) => el("th", {}, h)))),
        el("tbody", {}, u.privilegesOnFolders.map((f) => {
          const held = el("span", { class: "choices" }, rightBoxes(f.privileges, visible(f.folder)));
          return el("tr", {}, el("td", { class: "path" }, visible(f.folder)), el("td", {}, held),
            el("td", {}, el("button", { type: "button", class: "small", disabled: !may("SetUserPrivilegesOnFolder"), "aria-label": `${w("apply")} ${visible(f.folder)}`,
              onclick: () => act(["SetUserPrivilegesOnFolder", { folder: f.folder, privileges: picked(held) }]) }, w("apply")),
            el("button", { type: "button", class: "small", disabled: !may("SetUserPrivilegesOnFolder"), "aria-label": `${w("remove")} ${visible(f.folder)}`,
              onclick: () => act(["SetUserPrivilegesOnFolder", { folder: f.folder, privileges: "none" }]) }, w("remove"))));
        }))),
      el("form", { class: "inline", onsubmit: (ev) => { ev.preventDefault(); act(["SetUserPrivilegesOnFolder", { folder: newFolder.value, privileges: picked(newRights) }]); } },
        el("label", { for: "ud-folder" }, w("folder")), newFolder, newRights,
        el("button", { type: "submit", disabled: !may("SetUserPrivilegesOnFolder") }, w("grant")))));
    if (opened) fullName.focus();
  }

  // The server's settings: each with what it does, its default, and whether it is set; saved
  // (SetSetting) or returned to its default (ResetSetting) one at a time. They take effect
  // when the server next starts.
  async function settingsPage() {
    const say = el("p", { role: "status" });
    let all;
    const still = current();
    try { all = await call("GetSettings"); } catch (err) { if (still()) main.replaceChildren(el("p", { role: "alert", class: "error" }, err.message)); return; }
    if (!all || !still()) return;
    const rows = all.map((c) => {
      const id = `set-${c.key.replace(/[^a-z0-9]/gi, "-")}`;
      const input = c.type === "bool"
        ? el("select", { id }, ["true", "false"].map((v) => el("option", { value: v, selected: String(c.value) === v }, v)))
        : el("input", { id, type: "text", value: c.value ?? "" });
      const save = async (fn, args) => {
        try {
          const got = await call(fn, { key: c.key, ...args });
          if (got && "value" in got) input.value = got.value ?? "";
          say.textContent = `${c.key}: ${w("saved")} ${w("nextStart")}`;
        } catch (err) { say.textContent = `${c.key}: ${err.message}`; }
      };
      return el("tr", {},
        el("td", {}, el("label", { for: id }, c.key), el("p", { class: "muted" }, c.description)),
        el("td", {}, input, el("p", { class: "muted" }, `${w("default")}: ${c.default ?? "—"}`)),
        el("td", { class: "store-actions" },
          el("button", { type: "button", class: "small", "aria-label": `${w("save")} ${c.key}`, disabled: !byName.has("SetSetting"),
            onclick: () => save("SetSetting", { value: input.value }) }, w("save")),
          el("button", { type: "button", class: "small", "aria-label": `${w("reset")} ${c.key}`, disabled: !byName.has("ResetSetting"),
            onclick: () => save("ResetSetting", {}) }, w("reset"))));
    });
    main.replaceChildren(say, el("section", { class: "card", "aria-label": w("settings") }, el("h2", {}, w("settings")),
      el("table", { class: "list settings" },
        el("thead", {}, el("tr", {}, [w("setting"), w("value"), w("actions")].map((h) => el("th", {}, h)))),
        el("tbody", {}, rows))));
  }

  function auditPage() {
    const field = (id, label, type = "text") => el("div", { class: "arg" }, el("label", { for: id }, label),
      el("input", { id, type }));
    const filters = el("form", { class: "audit-filters" }, field("a-actor", w("actor")), field("a-action", w("action")),
      field("a-from", w("from"), "date"), field("a-to", w("to"), "date"),
      el("div", { class: "actions" }, el("button", { type: "submit", class: "primary" }, w("show")),
        el("button", { type: "button", onclick: () => csv() }, w("csv")),
        byName.has("VerifyAuditLog") ? el("button", { type: "button", onclick: () => verifyChain() }, w("verifyChain")) : null));
    const chainSaid = el("p", { role: "status" });
    // The hash chain walked on the server: ok, or where it breaks; its head to note elsewhere.
    async function verifyChain() {
      chainSaid.textContent = w("running");
      try {
        const r = await call("VerifyAuditLog");
        chainSaid.textContent = `${r.ok ? w("chainOk") : w("chainBroken")} (${r.records}; ${r.lastId}:${r.head})`
          + (r.problems.length ? ` — ${visible(r.problems.slice(0, 5).join("; "))}` : "");
      } catch (err) { chainSaid.textContent = err.message; }
    }
    const box = el("div");
    let offset = 0;
    const args = () => {
      const v = (id) => filters.querySelector(`#${id}`).value.trim();
      const a = { actor: v("a-actor"), action: v("a-action") };
      if (v("a-from")) a.fromIncluding = v("a-from");
      if (v("a-to")) a.toExcluding = v("a-to");
      return a;
    };
    filters.addEventListener("submit", (ev) => { ev.preventDefault(); offset = 0; load(); });
    main.replaceChildren(el("h2", {}, w("audit")), filters, chainSaid, box);
    load();

    async function load() {
      let page;
      try { page = await call("GetAuditLog", { ...args(), offset, limit: 100 }); }
      catch (err) { box.replaceChildren(el("p", { role: "alert", class: "error" }, err.message)); return; }
      if (!page) return;
      const last = offset + page.records.length;
      box.replaceChildren(
        el("div", { class: "summary", role: "status" }, el("span", {}, w("records")(page.total ? offset + 1 : 0, last, page.total)),
          el("span", { class: "pager" },
            el("button", { type: "button", disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - 100); load(); } }, w("newer")),
            el("button", { type: "button", disabled: last >= page.total, onclick: () => { offset += 100; load(); } }, w("older")))),
        el("table", { class: "list audit", "aria-label": w("audit") },
          el("thead", {}, el("tr", {}, [w("when"), w("actor"), w("action"), w("details")].map((h) => el("th", {}, h)))),
          el("tbody", {}, page.records.map((r) => el("tr", {},
            el("td", {}, r.at.replace("T", " ").replace("Z", "")), el("td", {}, visible(r.actor)),
            el("td", {}, visible(r.action)), el("td", { class: "details" }, visible(JSON.stringify(r.details))))))));
    }

    // Every matching record (1,000 a page), as CSV; a cell that a spreadsheet would take for
    // a formula (=, +, -, @) is prefixed with ' (the actors and details come from outside).
    async function csv() {
      const rows = [["id", "at", "actor", "action", "details"]];
      for (let at = 0; ; at += 1000) {
        const page = await call("GetAuditLog", { ...args(), offset: at, limit: 1000 });
        if (!page) return;
        for (const r of page.records) rows.push([r.id, r.at, r.actor, r.action, JSON.stringify(r.details)]);
        if (at + 1000 >= page.total || at >= 1000000) break;
      }
      const cell = (v) => {
        let text = String(v);
        if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
        return `"${text.replaceAll('"', '""')}"`;
      };
      const blob = new Blob([rows.map((r) => r.map(cell).join(",")).join("\r\n") + "\r\n"], { type: "text/csv" });
      const a = el("a", { href: URL.createObjectURL(blob), download: "mailkeep-audit.csv", hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
    }
  }

  function functionsPage() {
    const picker = el("input", { type: "search", id: "fn-filter", list: "fn-names", "aria-label": w("filter"), placeholder: w("filter") });
    const names = el("datalist", { id: "fn-names" }, listing.functions.map((f) => el("option", { value: f.name })));
    const select = el("select", { id: "fn-select", "aria-label": w("fn") }, listing.functions.map((f) =>
      el("option", { value: f.name }, f.allowed ? f.name : `${f.name} (${w("unavailable")})`)));
    const panel = el("div", { class: "fn-panel" });
    picker.addEventListener("change", () => { if (every.has(picker.value)) { select.value = picker.value; form(); } });
    select.addEventListener("change", form);
    main.replaceChildren(el("div", { class: "fn-pick" }, picker, names, select), panel);
    form();

    function form() {
      const fn = every.get(select.value);
      const inputs = new Map();
      const fields = fn.args.map((a) => {
        const id = `arg-${a.name}`;
        let input;
        if (a.type === "list" && a.choices.length) {
          input = el("fieldset", { id, class: "choices" }, el("legend", { class: "sr-only" }, a.name),
            a.choices.map((c) => el("label", {}, el("input", { type: "checkbox", value: c }), c)));
        } else if (a.choices.length) {
          input = el("select", { id }, (a.required ? [] : [el("option", { value: "" }, "")]).concat(
            a.choices.map((c) => el("option", { value: c, selected: c === a.default }, c))));
        } else if (a.type === "bool") {
          input = el("input", { id, type: "checkbox", checked: a.default === true });
        } else if (a.type === "json") {
          input = el("textarea", { id, rows: 4 });
        } else {
          input = el("input", { id, type: a.secret ? "password" : a.type === "int" || a.type === "number" ? "number" : "text",
            autocomplete: a.secret ? "new-password" : "off", value: a.default ?? "" });
        }
        inputs.set(a.name, [a, input]);
        return el("div", { class: "arg" }, el("label", { for: id, class: a.required ? "required" : null }, a.name), input,
          a.description ? el("p", { class: "muted" }, a.description) : null);
      });
      const progress = el("progress", { max: 100, hidden: true, "aria-label": `${w("progress")} ${fn.name}` });
      const statusText = el("p", { role: "status" });
      const out = el("pre", { class: "source", "aria-label": w("result") });
      const logBox = el("pre", { class: "source", "aria-label": w("log"), hidden: true });
      const cancel = el("button", { type: "button", hidden: true }, w("cancel"));
      let token = null;
      cancel.addEventListener("click", () => token && api("function/cancel", { token }));
      const run = el("button", { type: "submit", class: "primary", disabled: !fn.allowed }, w("run"));
      const formEl = el("form", { class: "fn-form", onsubmit: async (ev) => {
        ev.preventDefault();
        const args = {};
        for (const [name, [a, input]] of inputs) {
          if (a.type === "bool") { if (input.checked || a.required) args[name] = input.checked; continue; }
          if (input.tagName === "FIELDSET") {
            const picked = [...input.querySelectorAll("input:checked")].map((c) => c.value);
            if (picked.length) args[name] = picked.join(",");
            continue;
          }
          if (input.value === "") continue;
          if (a.type === "json") {
            try { args[name] = JSON.parse(input.value); } catch { args[name] = input.value; }
          } else args[name] = input.value;
        }
        out.textContent = ""; logBox.textContent = ""; logBox.hidden = true;
        run.disabled = true;
        try {
          let snap = await guarded(() => api("function/invoke", { name: fn.name, args }));
          token = snap?.token;
          while (snap && snap.statusCode === "running") {
            progress.hidden = false; cancel.hidden = false;
            if (snap.percentProgress != null) progress.value = snap.percentProgress; else progress.removeAttribute("value");
            statusText.textContent = `${w("running")} ${snap.statusText ? visible(snap.statusText) : ""}`;
            if (snap.logOutput) { logBox.hidden = false; logBox.textContent += visible(lines(snap.logOutput)); }
            snap = await guarded(() => api("function/status", { token: snap.token, lastKnownStatusVersion: snap.statusVersion, millisecondsTimeout: 30000 }));
          }
          if (!snap) return;
          if (snap.logOutput) { logBox.hidden = false; logBox.textContent += visible(lines(snap.logOutput)); }
          statusText.textContent = snap.statusCode;
          out.textContent = snap.error ? visible(`${snap.error.message}${snap.error.details ? "\n" + snap.error.details : ""}`)
            : visible(JSON.stringify(snap.result, null, 2));
        } catch (err) {
          statusText.textContent = err.message;
        } finally {
          run.disabled = false; progress.hidden = true; cancel.hidden = true; token = null;
        }
      } }, fields, el("div", { class: "actions" }, run, cancel), progress, statusText);
      panel.replaceChildren(el("h2", {}, fn.name), el("p", {}, fn.description),
        fn.allowed ? null : el("p", { class: "warning" }, `${w("notAllowed")} (${fn.roles.join(", ")})`),
        formEl, logBox,
        el("h3", {}, w("result")), out);
    }
  }
}
