// The administration pages for work that runs by itself: archiving profiles (a form per source
// type, built from GetProfileSchema; run with live progress; their results and reports) and
// scheduled jobs (a schedule editor; run now; their results). Every value from the server or
// from mail goes into the page as text.

const WORDS = {
  en: {
    profiles: "Archiving profiles", jobs: "Jobs", name: "Name", type: "Type", archive: "Archive",
    source: "Source", lastRun: "Last run", actions: "Actions", run: "Run", edit: "Edit", delete: "Delete",
    newProfile: "New profile", editProfile: (n) => `Edit profile ${n}`, create: "Create", save: "Save",
    cancelEdit: "Cancel", required: "required", unchanged: "(unchanged if left empty)",
    listHint: "several separated by commas", results: "Recent runs (7 days)", report: "Report",
    started: "Started", result: "Result", archived: "archived", duplicates: "already archived",
    failed: "failed", none: "None.", confirmDelete: (n) => `Delete ${n}?`, deleted: "Deleted.",
    saved: "Saved.", action: "Action", owner: "Owner", schedule: "Schedule", nextRun: "Next run",
    enabled: "Enabled", runNow: "Run now", stop: "Stop", newJob: "New job", editJob: (n) => `Schedule of ${n}`,
    zone: "Time zone", kind: "Repeat", manual: "Only when started by hand", once: "Once",
    interval: "Every few minutes", daily: "Daily", weekly: "Weekly", monthly: "Monthly",
    date: "Date", time: "Time", minutes: "Every (minutes)", days: "On these days", dayOfMonth: "Day of the month",
    last: "Last day", trigger: "Started by", error: "Error", details: "Details", notAllowed: "Your role may not change these.",
    actionHint: "A function call as `mailkeep call` takes it, e.g. VerifyStores or RunProfile id=3",
    dayNames: ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"],
    started_: "Started.",
  },
  ja: {
    profiles: "アーカイブ プロファイル", jobs: "ジョブ", name: "名前", type: "種類", archive: "アーカイブ",
    source: "ソース", lastRun: "前回の実行", actions: "操作", run: "実行", edit: "編集", delete: "削除",
    newProfile: "新しいプロファイル", editProfile: (n) => `プロファイル ${n} の編集`, create: "作成", save: "保存",
    cancelEdit: "取り消し", required: "必須", unchanged: "(空欄なら変更しません)",
    listHint: "複数はカンマ区切り", results: "最近の実行 (7 日間)", report: "レポート",
    started: "開始", result: "結果", archived: "件取り込み", duplicates: "件は取り込み済み",
    failed: "件失敗", none: "ありません。", confirmDelete: (n) => `${n} を削除しますか?`, deleted: "削除しました。",
    saved: "保存しました。", action: "処理", owner: "所有者", schedule: "スケジュール", nextRun: "次回の実行",
    enabled: "有効", runNow: "今すぐ実行", stop: "停止", newJob: "新しいジョブ", editJob: (n) => `${n} のスケジュール`,
    zone: "タイムゾーン", kind: "繰り返し", manual: "手動で開始したときのみ", once: "1 回",
    interval: "数分ごと", daily: "毎日", weekly: "毎週", monthly: "毎月",
    date: "日付", time: "時刻", minutes: "間隔 (分)", days: "曜日", dayOfMonth: "日",
    last: "月末", trigger: "開始のきっかけ", error: "エラー", details: "詳細", notAllowed: "このロールでは変更できません。",
    actionHint: "`mailkeep call` と同じ形の機能呼び出し (例: VerifyStores, RunProfile id=3)",
    dayNames: ["日曜日", "月曜日", "火曜日", "水曜日", "木曜日", "金曜日", "土曜日"],
    started_: "開始しました。",
  },
};
const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const INTERVALS = [5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 720];

// The browser's own zone (an IANA id the server knows), so that times read as the reader's.
export const ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "$Local";
const stamp = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}T${String(d.getHours()).padStart(2, "0")}:00:00`;
// The last `hours` (to the next hour after now) as GetWorkerResults and GetJobResults take it.
export const span = (hours) => {
  const now = Date.now();
  return { fromIncluding: stamp(new Date(now - hours * 3600000)), toExcluding: stamp(new Date(now + 3600000)) };
};
const lastWeek = () => span(7 * 24);
export const when = (iso) => (iso ? String(iso).replace("T", " ").replace(/(\d\d:\d\d):\d\d.*$/, "$1") : "–");

export function workPages(ctx) {
  const { el, visible, lines, lang, call, follow, byName, main, redraw, current } = ctx;
  const w = (key) => WORDS[lang][key] ?? WORDS.en[key];
  const fail = (err) => el("p", { role: "alert", class: "error" }, err.message);
  const counts = (r) => `${r.itemsArchived} ${w("archived")}, ${r.itemsDuplicate} ${w("duplicates")}, ${r.itemsFailed} ${w("failed")}`;

  // -- profiles ----------------------------------------------------------------------------------
  async function profilesPage(note = "") {
    const say = el("p", { role: "status" }, note);
    const editor = el("div");
    const recent = el("div");
    const still = current();
    main.replaceChildren(say);
    let profiles, kinds;
    try {
      [profiles, kinds] = await Promise.all([call("GetProfiles"), call("GetProfileSchema")]);
    } catch (err) { if (still()) main.replaceChildren(fail(err)); return; }
    if (!profiles || !kinds || !still()) return;
    const may = (fn) => byName.has(fn);
    const where = (p) => {
      const q = p.properties;
      return q.host ? `${q.login ?? ""}@${q.host}${q.port ? `:${q.port}` : ""}` : q.path ?? "";
    };
    const rows = profiles.map((p) => {
      const last = el("td", {}, p.lastResult ? `${p.lastResult.result} (${when(p.lastResult.startTime)})` : "–");
      const cell = el("td", { class: "store-actions" },
        el("button", { type: "button", class: "small", "aria-label": `${w("run")} ${visible(p.name)}`, disabled: !may("RunProfile") || p.running,
          onclick: async () => {
            const { snap, said } = await follow("RunProfile", { id: p.id }, cell, `${w("run")} ${visible(p.name)}`);
            if (snap?.statusCode === "succeeded") {
              said.textContent = `${snap.result.result}: ${counts(snap.result)}`;
              last.textContent = `${snap.result.result} (${when(snap.result.startTime)})`;
            }
            showRecent();
          } }, w("run")),
        el("button", { type: "button", class: "small", "aria-label": `${w("edit")} ${visible(p.name)}`, disabled: !may("UpdateProfile"),
          onclick: () => profileForm(p) }, w("edit")),
        el("button", { type: "button", class: "small", "aria-label": `${w("delete")} ${visible(p.name)}`, disabled: !may("DeleteProfile"),
          onclick: async () => {
            if (!window.confirm(w("confirmDelete")(visible(p.name)))) return;
            try { await call("DeleteProfile", { id: p.id }); redraw(() => profilesPage(w("deleted"))); } catch (err) { say.textContent = err.message; }
          } }, w("delete")));
      return el("tr", {}, el("td", {}, visible(p.name)), el("td", {}, p.type), el("td", {}, visible(p.userName)),
        el("td", { class: "path" }, visible(where(p))),
        last, cell);
    });
    main.replaceChildren(say,
      el("section", { class: "card", "aria-label": w("profiles") }, el("h2", {}, w("profiles")),
        profiles.length ? el("table", { class: "list" },
          el("thead", {}, el("tr", {}, [w("name"), w("type"), w("archive"), w("source"), w("lastRun"), w("actions")].map((h) => el("th", {}, h)))),
          el("tbody", {}, rows)) : el("p", { class: "muted" }, w("none")),
        may("CreateProfile") ? el("button", { type: "button", class: "new-item", onclick: () => profileForm(null) }, w("newProfile")) : null),
      editor, recent);
    showRecent();

    async function showRecent() {
      let runs;
      try { runs = await call("GetWorkerResults", { ...lastWeek(), timeZoneID: ZONE }); } catch (err) { recent.replaceChildren(fail(err)); return; }
      if (!runs) return;
      const reportText = el("pre", { class: "source" });
      const reportTitle = el("h3", { id: "run-report-title", tabindex: "-1" }, w("report"));
      const report = el("section", { "aria-labelledby": "run-report-title", hidden: true }, reportTitle, reportText);
      recent.replaceChildren(el("section", { class: "card", "aria-label": w("results") }, el("h2", {}, w("results")),
        runs.length ? el("table", { class: "list" },
          el("thead", {}, el("tr", {}, [w("started"), w("name"), w("archive"), w("result"), w("details"), w("actions")].map((h) => el("th", {}, h)))),
          el("tbody", {}, runs.slice(-50).reverse().map((r) => el("tr", {},
            el("td", {}, when(r.startTime)), el("td", {}, visible(r.profileName)), el("td", {}, visible(r.userName)),
            el("td", {}, r.result), el("td", {}, r.error ? visible(r.error) : counts(r)),
            el("td", {}, el("button", { type: "button", class: "small", "aria-label": `${w("report")}: ${visible(r.profileName)} ${when(r.startTime)}`, onclick: async () => {
              try {
                const full = await call("GetWorkerResultReport", { id: r.id });
                report.hidden = false;
                reportTitle.textContent = `${w("report")}: ${visible(full.profileName)} ${when(full.startTime)}`;
                reportText.textContent = visible(lines([`${full.profileName}: ${full.result} — ${counts(full)}`,
                  ...(full.error ? [full.error] : []), ...full.warnings,
                  ...full.failures.map((f) => `${f.origin}: ${f.reason}`), "", full.log].join("\n")));
                reportTitle.focus();
              } catch (err) { report.hidden = false; reportText.textContent = err.message; }
            } }, w("report"))))))) : el("p", { class: "muted" }, w("none")), report));
    }

    // The form of one source type, field by field from the schema: a new profile, or the
    // changes to one (secrets are write-only: empty keeps the stored one).
    function profileForm(existing) {
      const typeSelect = el("select", { id: "pf-type", disabled: Boolean(existing) },
        Object.keys(kinds).map((k) => el("option", { value: k, selected: existing ? existing.type === k : k === "imap" }, k)));
      const fieldsBox = el("div");
      const status = el("p", { role: "status" });
      let inputs = new Map();
      const draw = () => {
        const kind = typeSelect.value;
        inputs = new Map();
        const old = existing?.properties ?? {};
        fieldsBox.replaceChildren(...Object.entries(kinds[kind]).filter(([n]) => n !== "type").map(([n, f]) => {
          const id = `pf-${n}`;
          const base = f.type.replace("|null", "");
          const secret = n === "password" || n === "accessToken";
          const value = secret ? null : n in old ? old[n] : f.default;
          let input;
          if (f.values) {
            input = el("select", { id }, f.values.map((v) => el("option", { value: v, selected: v === value }, v)));
          } else if (base === "bool") {
            input = el("input", { id, type: "checkbox", checked: value === true });
          } else {
            input = el("input", { id, type: secret ? "password" : base === "int" ? "number" : "text",
              autocomplete: secret ? "new-password" : "off", required: f.required && !secret,
              value: base === "list" ? (value ?? []).join(", ") : value ?? "" });
          }
          inputs.set(n, { f, base, input, secret });
          const hint = [f.doc, base === "list" ? `(${w("listHint")})` : "", secret && existing ? w("unchanged") : ""].filter(Boolean).join(" ");
          return el("div", { class: "arg" }, el("label", { for: id, class: f.required ? "required" : null }, n), input,
            el("p", { class: "muted", id: `${id}-hint` }, hint));
        }));
        for (const { input } of inputs.values()) input.setAttribute("aria-describedby", `${input.id}-hint`);
      };
      typeSelect.addEventListener("change", draw);
      draw();
      const read = () => {
        const props = {};
        const old = existing?.properties ?? {};
        for (const [n, { f, base, input, secret }] of inputs) {
          let value;
          if (base === "bool") value = input.checked;
          else if (base === "list") value = input.value.split(",").map((s) => s.trim()).filter(Boolean);
          else if (input.value === "") value = f.type.endsWith("|null") ? null : "";
          else value = base === "int" ? Number(input.value) : input.value;
          if (secret) { if (input.value) props[n] = input.value; continue; }
          if (existing) { if (JSON.stringify(value) !== JSON.stringify(n in old ? old[n] : f.default)) props[n] = value; }
          else if (value !== null && !(value === "" && !f.required)) props[n] = value;
        }
        if (!existing) props.type = typeSelect.value;
        return props;
      };
      const title = existing ? w("editProfile")(visible(existing.name)) : w("newProfile");
      editor.replaceChildren(el("section", { class: "card", "aria-label": title }, el("h2", {}, title),
        el("form", { class: "fn-form", onsubmit: async (ev) => {
          ev.preventDefault();
          say.textContent = "";  // what the page said of the last change is not said of this one
          try {
            if (existing) await call("UpdateProfile", { id: existing.id, properties: read() });
            else await call("CreateProfile", { properties: read() });
            editor.replaceChildren();
            await profilesPage(w("saved"));
          } catch (err) { status.textContent = err.message; }
        } }, el("div", { class: "arg" }, el("label", { for: "pf-type" }, w("type")), typeSelect), fieldsBox,
          el("div", { class: "actions" }, el("button", { type: "submit", class: "primary" }, existing ? w("save") : w("create")),
            el("button", { type: "button", onclick: () => {
              editor.replaceChildren();
              main.querySelector(existing ? `[aria-label="${CSS.escape(`${w("edit")} ${visible(existing.name)}`)}"]` : ".new-item")?.focus();
            } }, w("cancelEdit"))), status)));
      editor.querySelector("input, select:not([disabled])")?.focus();
    }
  }

  // -- jobs --------------------------------------------------------------------------------------
  const described = (s) => {
    const d = w("dayNames");
    const time = s.time ? s.time.slice(0, 5) : "";
    switch (s.type) {
      case "once": return `${w("once")}: ${s.date} ${time}`;
      case "interval": return `${w("interval")}: ${s.interval}`;
      case "daily": return `${w("daily")} ${time}`;
      case "weekly": return `${w("weekly")} ${s.dayOfWeek.split(",").map((x) => d[DAYS.indexOf(x.trim())] ?? x).join(", ")} ${time}`;
      case "monthly": return `${w("monthly")} ${s.dayOfMonth === "Last" ? w("last") : s.dayOfMonth} ${time}`;
      default: return w("manual");
    }
  };

  async function jobsPage(note = "") {
    const say = el("p", { role: "status" }, note);
    const editor = el("div");
    const recent = el("div");
    const still = current();
    main.replaceChildren(say);
    let jobs;
    try { jobs = await call("GetJobs"); } catch (err) { if (still()) main.replaceChildren(fail(err)); return; }
    if (!jobs || !still()) return;
    const may = (fn) => byName.has(fn);
    const rows = jobs.map((j) => {
      const toggle = el("input", { type: "checkbox", checked: j.enabled, disabled: !may("SetJobEnabled"),
        "aria-label": `${w("enabled")} ${visible(j.name)}`, onchange: async () => {
          say.textContent = "";
          try { await call("SetJobEnabled", { id: j.id, enabled: toggle.checked }); redraw(() => jobsPage(w("saved"))); }
          catch (err) { say.textContent = err.message; toggle.checked = !toggle.checked; }
        } });
      return el("tr", {}, el("td", {}, visible(j.name)), el("td", { class: "code" }, visible(j.action)), el("td", {}, visible(j.owner)),
        el("td", {}, `${described(j.schedule)} (${visible(j.timeZoneId)})`), el("td", {}, when(j.nextRun)),
        el("td", {}, j.running ? w("run") + "…" : j.lastRun ? `${j.lastRun.result} (${when(j.lastRun.startTime)})` : "–"),
        el("td", {}, el("label", { class: "check" }, toggle, " ", w("enabled"))),
        el("td", { class: "store-actions" },
          j.running
            ? el("button", { type: "button", class: "small", "aria-label": `${w("stop")} ${visible(j.name)}`, disabled: !may("CancelJobAsync"),
              onclick: async () => {
                try { await call("CancelJobAsync", { id: j.id }); redraw(() => jobsPage()); } catch (err) { say.textContent = err.message; }
              } }, w("stop"))
            : el("button", { type: "button", class: "small", "aria-label": `${w("runNow")} ${visible(j.name)}`, disabled: !may("RunJobAsync"),
              onclick: async () => {
                try { await call("RunJobAsync", { id: j.id }); redraw(() => jobsPage(`${visible(j.name)}: ${w("started_")}`)); }
                catch (err) { say.textContent = err.message; }
              } }, w("runNow")),
          el("button", { type: "button", class: "small", "aria-label": `${w("edit")} ${visible(j.name)}`, disabled: !may("SetJobSchedule"),
            onclick: () => jobForm(j) }, w("edit")),
          el("button", { type: "button", class: "small", "aria-label": `${w("delete")} ${visible(j.name)}`, disabled: !may("DeleteJob"),
            onclick: async () => {
              if (!window.confirm(w("confirmDelete")(visible(j.name)))) return;
              try { await call("DeleteJob", { id: j.id }); redraw(() => jobsPage(w("deleted"))); } catch (err) { say.textContent = err.message; }
            } }, w("delete"))));
    });
    main.replaceChildren(say,
      el("section", { class: "card", "aria-label": w("jobs") }, el("h2", {}, w("jobs")),
        jobs.length ? el("table", { class: "list" },
          el("thead", {}, el("tr", {}, [w("name"), w("action"), w("owner"), w("schedule"), w("nextRun"), w("lastRun"), w("enabled"), w("actions")]
            .map((h) => el("th", {}, h)))),
          el("tbody", {}, rows)) : el("p", { class: "muted" }, w("none")),
        may("CreateJob") ? el("button", { type: "button", class: "new-item", onclick: () => jobForm(null) }, w("newJob")) : null),
      editor, recent);
    // While a job runs, the page follows it (every 2 s, as long as it is shown and no form is
    // open), keeping what it said and where the focus was.
    if (jobs.some((j) => j.running)) {
      const shown = main.firstChild;
      setTimeout(() => { if (shown.isConnected && !editor.childElementCount) redraw(() => jobsPage(say.textContent)); }, 2000);
    }
    showRecent();

    async function showRecent() {
      let runs;
      try { runs = await call("GetJobResults", { ...lastWeek(), timeZoneId: ZONE }); } catch (err) { recent.replaceChildren(fail(err)); return; }
      if (!runs) return;
      recent.replaceChildren(el("section", { class: "card", "aria-label": w("results") }, el("h2", {}, w("results")),
        runs.length ? el("table", { class: "list" },
          el("thead", {}, el("tr", {}, [w("started"), w("name"), w("trigger"), w("result"), w("error")].map((h) => el("th", {}, h)))),
          el("tbody", {}, runs.slice(-50).reverse().map((r) => el("tr", {},
            el("td", {}, when(r.startTime)), el("td", {}, visible(r.jobName)), el("td", {}, r.trigger),
            el("td", {}, r.result), el("td", {}, visible(r.error ?? "")))))) : el("p", { class: "muted" }, w("none"))));
    }

    // A new job, or a job's schedule: the repeat chosen first, then only the fields it takes.
    async function jobForm(existing) {
      let zones = [], users = [];
      try {
        [zones, users] = await Promise.all([call("GetTimeZones").then((z) => z ?? []), existing ? [] : call("GetUsers").then((u) => u ?? [])]);
      } catch (err) { editor.replaceChildren(fail(err)); return; }
      const s = existing?.schedule ?? { type: "daily", time: "02:00:00" };
      const status = el("p", { role: "status" });
      const field = (id, label, input, hint) => el("div", { class: "arg" }, el("label", { for: id }, label), input,
        hint ? el("p", { class: "muted" }, hint) : null);
      const name = el("input", { id: "job-name", type: "text", required: true, maxlength: 100, value: existing?.name ?? "" });
      const action = el("input", { id: "job-action", type: "text", required: true, list: "job-functions", value: existing?.action ?? "", disabled: Boolean(existing) });
      const fnNames = el("datalist", { id: "job-functions" }, [...ctx.every.keys()].map((n) => el("option", { value: n })));
      const owner = existing ? el("input", { id: "job-owner", type: "text", value: existing.owner, disabled: true })
        : el("select", { id: "job-owner" }, users.map((u) => el("option", { value: u.userName, selected: u.userName === ctx.user }, visible(u.userName))));
      const zoneId = existing?.timeZoneId ?? (zones.some((z) => z.id === ZONE) ? ZONE : "$Local");
      const zone = el("select", { id: "job-zone" }, zones.map((z) => el("option", { value: z.id, selected: z.id === zoneId }, z.displayName)));
      const kind = el("select", { id: "job-kind" }, ["manual", "once", "interval", "daily", "weekly", "monthly"]
        .map((k) => el("option", { value: k, selected: k === s.type }, w(k))));
      const date = el("input", { id: "job-date", type: "date", value: s.date ?? "" });
      const time = el("input", { id: "job-time", type: "time", value: (s.time ?? "02:00:00").slice(0, 5) });
      const minutes = el("select", { id: "job-interval" }, INTERVALS.map((m) => el("option", { value: m, selected: m === (s.interval ?? 60) }, String(m))));
      const picked = new Set((s.dayOfWeek ?? "Monday").split(",").map((x) => x.trim()));
      const days = el("fieldset", { class: "choices", id: "job-days" }, el("legend", {}, w("days")),
        DAYS.map((d, i) => el("label", {}, el("input", { type: "checkbox", value: d, checked: picked.has(d) }), w("dayNames")[i])));
      const monthDay = el("select", { id: "job-day" }, [...Array.from({ length: 31 }, (_, i) => String(i + 1)), "Last"]
        .map((d) => el("option", { value: d, selected: d === (s.dayOfMonth ?? "1") }, d === "Last" ? w("last") : d)));
      const parts = {
        date: field("job-date", w("date"), date), time: field("job-time", w("time"), time),
        interval: field("job-interval", w("minutes"), minutes), days, day: field("job-day", w("dayOfMonth"), monthDay),
      };
      const NEEDS = { manual: [], once: ["date", "time"], interval: ["interval"], daily: ["time"], weekly: ["days", "time"], monthly: ["day", "time"] };
      const arrange = () => { for (const [k, node] of Object.entries(parts)) node.hidden = !NEEDS[kind.value].includes(k); };
      kind.addEventListener("change", arrange);
      arrange();
      const schedule = () => {
        const out = { timeZoneId: zone.value };
        const k = kind.value;
        if (k === "once") out.date = date.value;
        if (["once", "daily", "weekly", "monthly"].includes(k)) out.time = time.value;
        if (k === "interval") out.interval = Number(minutes.value);
        if (k === "weekly") out.dayOfWeek = [...days.querySelectorAll("input:checked")].map((c) => c.value).join(",");
        if (k === "monthly") out.dayOfMonth = monthDay.value;
        return out;
      };
      const title = existing ? w("editJob")(visible(existing.name)) : w("newJob");
      editor.replaceChildren(el("section", { class: "card", "aria-label": title }, el("h2", {}, title),
        el("form", { class: "fn-form", onsubmit: async (ev) => {
          ev.preventDefault();
          say.textContent = "";  // what the page said of the last change is not said of this one
          try {
            if (existing) {
              if (name.value !== existing.name) await call("RenameJob", { id: existing.id, name: name.value });
              await call("SetJobSchedule", { id: existing.id, ...schedule() });
            } else {
              await call("CreateJob", { name: name.value, action: action.value, owner: owner.value, ...schedule() });
            }
            editor.replaceChildren();
            await jobsPage(w("saved"));
          } catch (err) { status.textContent = err.message; }
        } }, field("job-name", w("name"), name), field("job-action", w("action"), action, w("actionHint")), fnNames,
          field("job-owner", w("owner"), owner), field("job-zone", w("zone"), zone), field("job-kind", w("kind"), kind),
          Object.values(parts),
          el("div", { class: "actions" }, el("button", { type: "submit", class: "primary" }, existing ? w("save") : w("create")),
            el("button", { type: "button", onclick: () => {
              editor.replaceChildren();
              main.querySelector(existing ? `[aria-label="${CSS.escape(`${w("edit")} ${visible(existing.name)}`)}"]` : ".new-item")?.focus();
            } }, w("cancelEdit"))), status)));
      name.focus();
    }
  }

  return { profilesPage, jobsPage };
}
