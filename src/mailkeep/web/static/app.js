// The mailkeep console: log in, search and read one's archive. Plain ES module, no framework.
// Everything that comes from mail goes into the page with textContent, never as HTML; a
// message's HTML body is loaded from the server, already made safe, into a sandboxed frame.
// The session id lives in this tab only (sessionStorage) and travels as X-Fs-SessionId.

const TEXT = {
  en: {
    title: "mailkeep", user: "User name", password: "Password", login: "Log in",
    logout: "Log out", search: "Search", searchButton: "Search", folders: "Folders",
    all: "All messages", results: "Results", date: "Date", from: "From", subject: "Subject",
    size: "Size", none: "No messages match.", of: "of", about: "about", previous: "Previous page",
    next: "Next page", choose: "Choose a message to read it.", body: "Message body",
    attachments: "Attachments", original: "Download original (.eml)",
    source: "Show source", hideSource: "Hide source", remote: "Show remote images",
    back: "Back to the results", expired: "Your session has ended: log in again.",
    noSubject: "(no subject)", warnings: "Warnings", language: "日本語",
    failed: "The request failed", download: "Download", inline: "inline image",
    filters: "Filters", to: "To", after: "After", before: "Before", hasAttachment: "Has attachment",
    foundIn: "Found in",
    apply: "Apply filters", pageSize: "Page size", format: "Export format",
    exportSelected: (n) => `Export ${n} selected`, exportAll: (n) => `Export all ${n} results`,
    select: (s) => `Select ${s}`,
    newPassword: "New password", repeatPassword: "Repeat the new password",
    changePassword: "Change password", mustChange: "This account still has its initial password: choose a new one (at least 8 characters).",
    mismatch: "The two new passwords differ.",
    admin: "Administration", expand: "Show or hide the folders in",
    alwaysRemote: "Always show remote images from this sender", fullView: "Full view",
    importTitle: "Import mail", importFiles: "Files of mail (.eml, .mbox, .mbox.gz, .msg, .pst, .zip)",
    intoFolder: "Into folder", importing: (n) => `Importing ${n}…`,
    imported: (name, r) => `${name}: ${r.archived} archived, ${r.duplicates} already archived, ${r.failed} failed`,
    drop: "Drop files here or choose them",
    preview: "Preview", sort: "Sort", sorts: { "date-desc": "Newest first", "date-asc": "Oldest first",
      "from-asc": "From, A to Z", "subject-asc": "Subject, A to Z", "size-desc": "Largest first",
      "size-asc": "Smallest first" },
  },
  ja: {
    title: "mailkeep", user: "ユーザー名", password: "パスワード", login: "ログイン",
    logout: "ログアウト", search: "検索", searchButton: "検索", folders: "フォルダー",
    all: "すべてのメッセージ", results: "検索結果", date: "日付", from: "差出人",
    subject: "件名", size: "サイズ", none: "該当するメッセージはありません。", of: "/", about: "約",
    previous: "前のページ", next: "次のページ", choose: "メッセージを選ぶと表示されます。",
    body: "Message body", attachments: "添付ファイル", original: "元のメッセージをダウンロード (.eml)",
    source: "ソースを表示", hideSource: "ソースを隠す", remote: "外部の画像を表示",
    back: "検索結果に戻る", expired: "セッションが終了しました。もう一度ログインしてください。",
    noSubject: "(件名なし)", warnings: "警告", language: "English",
    failed: "要求に失敗しました", download: "ダウンロード", inline: "インライン画像",
    filters: "絞り込み", to: "宛先", after: "開始日", before: "終了日", hasAttachment: "添付ファイルあり",
    foundIn: "一致した添付ファイル:",
    apply: "絞り込む", pageSize: "表示件数", format: "エクスポート形式",
    exportSelected: (n) => `選択した ${n} 件をエクスポート`, exportAll: (n) => `検索結果 ${n} 件をすべてエクスポート`,
    select: (s) => `${s} を選択`,
    newPassword: "新しいパスワード", repeatPassword: "新しいパスワード (確認)",
    changePassword: "パスワードを変更", mustChange: "初期パスワードのままです。新しいパスワード (8 文字以上) を設定してください。",
    mismatch: "新しいパスワードが一致しません。",
    admin: "管理", expand: "下位フォルダーの表示切り替え:",
    alwaysRemote: "この差出人の外部画像を常に表示", fullView: "全体表示",
    importTitle: "メールの取り込み", importFiles: "メールのファイル (.eml, .mbox, .mbox.gz, .msg, .pst, .zip)",
    intoFolder: "取り込み先フォルダー", importing: (n) => `${n} を取り込んでいます…`,
    imported: (name, r) => `${name}: ${r.archived} 件取り込み, ${r.duplicates} 件は取り込み済み, ${r.failed} 件失敗`,
    drop: "ここにファイルをドロップするか選択してください",
    preview: "プレビュー", sort: "並べ替え", sorts: { "date-desc": "新しい順", "date-asc": "古い順", "from-asc": "差出人順",
      "subject-asc": "件名順", "size-desc": "大きい順", "size-asc": "小さい順" },
  },
};

const state = {
  sid: sessionStorage.getItem("mk.sid"),
  user: sessionStorage.getItem("mk.user") || "",
  role: sessionStorage.getItem("mk.role") || "user",
  lang: localStorage.getItem("mk.lang") ||
    ((navigator.language || "en").toLowerCase().startsWith("ja") ? "ja" : "en"),
  query: "", folder: "", offset: 0, limit: Number(localStorage.getItem("mk.limit")) || 50,
  results: [], total: 0, selected: -1, chosen: new Set(), format: "mbox",
  sort: localStorage.getItem("mk.sort") || "date-desc",
};
const t = (key) => TEXT[state.lang][key] ?? TEXT.en[key];
const app = document.getElementById("app");

// -- DOM helpers: text only -------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
// Control characters of mail made visible, so that nothing hides in a subject or a name.
const visible = (s) => String(s ?? "").replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g,
  (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
const human = (n) => n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(0)} KB`
  : n < 1073741824 ? `${(n / 1048576).toFixed(1)} MB` : `${(n / 1073741824).toFixed(1)} GB`;
const shortDate = (iso) => iso ? iso.slice(0, 10) : "";

// -- the console API ---------------------------------------------------------------------------
class Expired extends Error {}

async function api(path, body) {
  const resp = await fetch(`/mcapi/${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...(state.sid ? { "X-Fs-SessionId": state.sid } : {}) },
    body: JSON.stringify(body ?? {}),
  });
  let result;
  try { result = (await resp.json()).result; } catch { throw new Error(`${t("failed")} (${resp.status})`); }
  if (result.status === "success") return result.data;
  if (result.code === 3001 && path !== "auth/login") throw new Expired(result.message);
  throw new Error(result.message || `${t("failed")} (${resp.status})`);
}

async function guarded(work) {
  try {
    return await work();
  } catch (err) {
    if (err instanceof Expired) {
      if (searchBox?.isConnected) state.query = searchBox.value;  // kept for after the login
      forget();
      renderLogin(t("expired"));
      return undefined;
    }
    throw err;
  }
}

function remember(sid, user) {
  state.sid = sid;
  state.user = user;
  sessionStorage.setItem("mk.sid", sid);
  sessionStorage.setItem("mk.user", user);
}

// The first login with the initial password: a new one first.
function renderNewPassword(current) {
  const status = el("p", { role: "alert", class: "error" });
  const first = el("input", { id: "new-password", type: "password", autocomplete: "new-password", required: true, minlength: 8 });
  const again = el("input", { id: "new-password-2", type: "password", autocomplete: "new-password", required: true, minlength: 8 });
  const form = el("form", { class: "login", "aria-labelledby": "new-title", onsubmit: async (ev) => {
    ev.preventDefault();
    status.textContent = "";
    if (first.value !== again.value) { status.textContent = t("mismatch"); return; }
    try {
      await api("account/password", { currentPassword: current, newPassword: first.value });
      forget();  // the change ended the session: log in again with the new password
      const data = await api("auth/login", { userName: state.user, password: first.value });
      remember(data.sessionId, state.user);
      await renderArchive();
    } catch (err) {
      status.textContent = err.message;
    }
  } },
  el("h1", { id: "new-title" }, t("changePassword")),
  el("p", {}, t("mustChange")),
  el("label", { for: "new-password" }, t("newPassword")), first,
  el("label", { for: "new-password-2" }, t("repeatPassword")), again,
  el("button", { type: "submit", class: "primary" }, t("changePassword")),
  status);
  app.replaceChildren(form);
  first.focus();
}

function forget() {
  state.sid = null;
  sessionStorage.removeItem("mk.sid");
}

// -- login -------------------------------------------------------------------------------------
function renderLogin(message = "") {
  const status = el("p", { role: "alert", class: "error" }, message);
  const name = el("input", { id: "user", type: "text", name: "user", autocomplete: "username",
    required: true, value: state.user });
  const password = el("input", { id: "password", type: "password", name: "password",
    autocomplete: "current-password", required: true });
  const form = el("form", { class: "login", "aria-labelledby": "login-title", onsubmit: async (ev) => {
    ev.preventDefault();
    status.textContent = "";
    try {
      const data = await api("auth/login", { userName: name.value, password: password.value, getRole: true });
      remember(data.sessionId, name.value);
      state.role = data.role || "user";
      sessionStorage.setItem("mk.role", state.role);
      if (data.mustChangePassword) renderNewPassword(password.value);
      else await renderArchive();
    } catch (err) {
      status.textContent = err.message;
      password.select();
    }
  } },
  el("h1", { id: "login-title" }, "mailkeep"),
  el("label", { for: "user" }, t("user")), name,
  el("label", { for: "password" }, t("password")), password,
  el("button", { type: "submit", class: "primary" }, t("login")),
  status);
  app.replaceChildren(form);
  (state.user ? password : name).focus();
}

// -- the archive screen --------------------------------------------------------------------------
let layout, folderList, resultsBox, reader, searchBox;

async function renderArchive() {
  searchBox = el("input", { type: "search", role: "searchbox", "aria-label": t("search"),
    placeholder: "from:alice subject:invoice after:2024-01-01", value: state.query });
  const form = el("form", { class: "search", role: "search", onsubmit: (ev) => {
    ev.preventDefault();
    state.query = searchBox.value;
    state.offset = 0;
    runSearch();
  } }, searchBox, el("button", { type: "submit", class: "primary" }, t("searchButton")), filterBar());
  folderList = el("nav", { class: "folders", "aria-label": t("folders") });
  resultsBox = el("section", { class: "results", "aria-label": t("results") });
  reader = el("section", { class: "reader", "aria-label": t("body") }, el("p", { class: "muted" }, t("choose")));
  layout = el("div", { class: "layout" }, folderList, resultsBox, reader);
  const bar = el("header", { class: "bar" }, el("h1", {}, "mailkeep"),
    el("span", { class: "who" }, visible(state.user)),
    state.role !== "user" ? el("button", { type: "button", onclick: openAdmin }, t("admin")) : null,
    el("button", { type: "button", onclick: () => {
      state.lang = state.lang === "ja" ? "en" : "ja";
      localStorage.setItem("mk.lang", state.lang);
      document.documentElement.lang = state.lang;
      renderArchive();
    }, lang: state.lang === "ja" ? "en" : "ja" }, t("language")),
    el("button", { type: "button", onclick: async () => {
      try { await api("auth/logout"); } catch { /* ended already */ }
      forget();
      renderLogin();
    } }, t("logout")));
  app.replaceChildren(bar, form, layout);
  document.documentElement.lang = state.lang;
  searchBox.focus();
  await Promise.all([loadFolders(), runSearch()]);
}

// The filter bar writes the same tokens one would type (from:"..." after:...), then searches.
function filterBar() {
  const field = (id, label, type = "text") => [el("label", { for: id }, label),
    el("input", { id, type, name: id })];
  const box = el("details", { class: "filters" }, el("summary", {}, t("filters")),
    el("div", { class: "grid" },
      field("f-from", t("from")), field("f-to", t("to")), field("f-subject", t("subject")),
      field("f-after", t("after"), "date"), field("f-before", t("before"), "date"),
      el("label", { class: "check" }, el("input", { id: "f-att", type: "checkbox" }), t("hasAttachment")),
      el("button", { type: "button", onclick: () => {
        const q = (s) => `"${s.replaceAll('"', "")}"`;
        const tokens = [];
        for (const [id, name] of [["f-from", "from"], ["f-to", "to"], ["f-subject", "subject"]]) {
          const v = box.querySelector(`#${id}`).value.trim();
          if (v) tokens.push(`${name}:${q(v)}`);
        }
        for (const [id, name] of [["f-after", "after"], ["f-before", "before"]]) {
          const v = box.querySelector(`#${id}`).value;
          if (v) tokens.push(`${name}:${v}`);
        }
        if (box.querySelector("#f-att").checked) tokens.push("has:attachment");
        searchBox.value = [searchBox.value.trim(), ...tokens].filter(Boolean).join(" ");
        state.query = searchBox.value;
        state.offset = 0;
        runSearch();
      } }, t("apply"))));
  return box;
}

async function exportMessages(all) {
  const body = all ? { query: fullQuery(), format: state.format }
    : { ids: [...state.chosen].join(","), format: state.format };
  let made;
  try {
    made = await guarded(() => api("archive/export", body));
  } catch (err) {
    alertIn(resultsBox, err.message);
    return;
  }
  if (!made) return;
  const a = el("a", { href: made.url, download: made.fileName, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
}

// Previews: images of the four raster types (never SVG) as blobs of that type, text as text.
const PREVIEW_IMAGES = ["image/png", "image/jpeg", "image/gif", "image/webp"];
const PREVIEW_BYTES = 10 * 1048576;
const previewable = (p) => p.size <= PREVIEW_BYTES &&
  (PREVIEW_IMAGES.includes(p.contentType) || p.contentType === "text/plain");

async function preview(part, button) {
  const item = button.closest("li");
  item.querySelector(".preview")?.remove();
  const resp = await fetch(part.url);
  if (!resp.ok) { alertIn(item, `${t("failed")} (${resp.status})`); return; }
  const bytes = await resp.arrayBuffer();
  let shown;
  if (PREVIEW_IMAGES.includes(part.contentType)) {
    const url = URL.createObjectURL(new Blob([bytes], { type: part.contentType }));
    shown = el("img", { src: url, alt: visible(part.name) || part.contentType });
    shown.addEventListener("load", () => URL.revokeObjectURL(url), { once: true });
  } else {
    const text = new TextDecoder("utf-8").decode(bytes.slice(0, 200000));
    shown = el("pre", { class: "text" }, visible(text));
  }
  item.append(el("div", { class: "preview" }, shown));
  button.remove();
}

function alertIn(box, message) {
  box.prepend(el("p", { role: "alert", class: "error" }, message));
}

async function loadFolders() {
  const folders = await guarded(() => api("archive/folders"));
  if (!folders) return;
  // The tree: "alice/Old/2019" under "alice/Old" under "alice" (levels without mail of their
  // own too); a folder's count is its own mail and, after a slash, all below it.
  const root = new Map();
  for (const f of folders) {
    let level = root, path = "";
    f.folder.split("/").forEach((name, i, parts) => {
      path = path ? `${path}/${name}` : name;
      if (!level.has(name)) level.set(name, { name, path, own: 0, total: 0, children: new Map() });
      const node = level.get(name);
      node.total += f.messageCount;
      if (i === parts.length - 1) node.own += f.messageCount;
      level = node.children;
    });
  }
  const choose = (value) => {
    state.folder = value;
    state.offset = 0;
    for (const b of folderList.querySelectorAll("button[data-folder]")) {
      b.setAttribute("aria-pressed", String(b.dataset.folder === value));
    }
    runSearch();
  };
  const pick = (label, value, count) => el("button", { type: "button", class: "pick-folder",
    "aria-pressed": String(state.folder === value), "data-folder": value, onclick: () => choose(value) },
    el("span", {}, visible(label)), count === null ? null : el("span", { class: "count" }, count));
  const branch = (nodes, depth) => el("ul", {}, [...nodes.values()].map((n) => {
    const kids = n.children.size ? branch(n.children, depth + 1) : null;
    const open = depth === 0 || state.folder === n.path || state.folder.startsWith(`${n.path}/`);
    if (kids && !open) kids.hidden = true;
    const toggle = kids ? el("button", { type: "button", class: "twisty", "aria-expanded": String(open),
      "aria-label": `${t("expand")} ${visible(n.path)}`, onclick: (ev) => {
        const was = ev.currentTarget.getAttribute("aria-expanded") === "true";
        ev.currentTarget.setAttribute("aria-expanded", String(!was));
        kids.hidden = was;
      } }, "›") : el("span", { class: "twisty" });
    const count = n.children.size ? `${n.own} / ${n.total}` : String(n.own);
    return el("li", {}, el("div", { class: "row" }, toggle, pick(n.name, n.path, count)), kids);
  }));
  if (!uploadBox?.isConnected) uploadBox = importBox();  // kept, with what it says, across reloads
  folderList.replaceChildren(el("h2", {}, t("folders")),
    el("ul", {}, el("li", {}, el("div", { class: "row" }, el("span", { class: "twisty" }), pick(t("all"), "", null)))),
    branch(root, 0), uploadBox);
}
let uploadBox = null;

// fetch() says nothing of an upload's progress: XMLHttpRequest does (percent of the bytes
// sent; the import itself then runs on the server and its outcome is the answer).
function put(url, file, progress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.upload.addEventListener("progress", (ev) => {
      if (ev.lengthComputable) progress(Math.round(100 * ev.loaded / ev.total));
    });
    xhr.addEventListener("load", () => {
      try { resolve(JSON.parse(xhr.responseText).result); } catch { reject(new Error(`${t("failed")} (${xhr.status})`)); }
    });
    xhr.addEventListener("error", () => reject(new Error(t("failed"))));
    xhr.send(file);
  });
}

// Import by upload: each file is announced (StartUpload), then sent as it is (PUT), streamed
// by the browser; the answer is the import's outcome.
function importBox() {
  const status = el("div", { role: "log", class: "upload-status" });
  const folder = el("input", { id: "upload-folder", type: "text", value: "Uploads" });
  const files = el("input", { id: "upload-files", type: "file", multiple: true,
    accept: ".eml,.mbox,.gz,.zip,.mbx,.msg,.pst,.ost,message/rfc822,application/mbox,application/zip,application/vnd.ms-outlook",
    onchange: () => send([...files.files]) });
  async function send(list) {
    for (const file of list) {
      const bar = el("progress", { max: 100, value: 0, "aria-label": visible(file.name) });
      const line = el("p", {}, t("importing")(visible(file.name)), bar);
      status.append(line);
      try {
        const link = await guarded(() => api("archive/upload", { fileName: file.name, size: file.size, folder: folder.value }));
        if (!link) return;
        const result = await put(link.url, file, (sent) => { bar.value = sent / 2; });
        if (result.status !== "success") throw new Error(result.message);
        // the import runs as a process on the server: followed to its end (the second half)
        let snap = result.data;
        while (snap && snap.statusCode === "running") {
          if (snap.percentProgress != null) bar.value = 50 + snap.percentProgress / 2;
          snap = await guarded(() => api("function/status", { token: snap.token, lastKnownStatusVersion: snap.statusVersion, millisecondsTimeout: 30000 }));
        }
        if (!snap) return;
        if (snap.statusCode !== "succeeded") throw new Error(snap.error?.message || snap.statusCode);
        line.textContent = t("imported")(visible(file.name), snap.result);
      } catch (err) {
        line.textContent = `${visible(file.name)}: ${err.message}`;
        line.className = "error";
      }
    }
    files.value = "";
    loadFolders();
    runSearch();
  }
  const zone = el("section", { class: "drop", "aria-label": t("importTitle"),
    ondragover: (ev) => { ev.preventDefault(); zone.classList.add("over"); },
    ondragleave: () => zone.classList.remove("over"),
    ondrop: (ev) => { ev.preventDefault(); zone.classList.remove("over"); send([...ev.dataTransfer.files]); } },
    el("h2", {}, t("importTitle")),
    el("label", { for: "upload-folder" }, t("intoFolder")), folder,
    el("label", { for: "upload-files" }, t("importFiles")), files,
    el("p", { class: "muted" }, t("drop")),
    status);
  return zone;
}

function fullQuery() {
  const parts = [];
  if (state.folder) {
    const [owner, ...path] = state.folder.split("/");
    parts.push(`user:"${owner}"`);
    if (path.length) parts.push(`folder:"${path.join("/")}"`);
  }
  if (state.query.trim()) parts.push(state.query.trim());
  return parts.join(" ");
}

async function runSearch() {
  let data;
  try {
    const [sort, way] = state.sort.split("-");
    data = await guarded(() => api("archive/search", { query: fullQuery(), offset: state.offset,
      limit: state.limit, sort, ascending: way === "asc" }));
  } catch (err) {
    resultsBox.replaceChildren(el("p", { role: "alert", class: "error" }, err.message));
    return;
  }
  if (!data) return;
  state.results = data.messages;
  state.total = data.total;
  state.selected = -1;
  const first = data.total ? state.offset + 1 : 0;
  const last = state.offset + data.messages.length;
  // past many matches the server estimates the total (totalExact false): said so, and the
  // next page is there while this one is full
  const count = data.total.toLocaleString(state.lang);
  const total = data.totalExact === false ? `${t("about")} ${count}` : count;
  const more = data.totalExact === false ? data.messages.length === state.limit : last < data.total;
  const exportBox = el("div", { class: "exports" },
    el("label", { for: "format" }, t("format")),
    el("select", { id: "format", onchange: (ev) => { state.format = ev.target.value; } },
      el("option", { value: "mbox", selected: state.format === "mbox" }, "mbox"),
      el("option", { value: "zip", selected: state.format === "zip" }, "zip (.eml)")),
    el("button", { type: "button", id: "export-selected", disabled: state.chosen.size === 0,
      onclick: () => exportMessages(false) }, t("exportSelected")(state.chosen.size)),
    el("button", { type: "button", disabled: data.total === 0, onclick: () => exportMessages(true) },
      t("exportAll")(total)),
    el("label", { for: "sort" }, t("sort")),
    el("select", { id: "sort", onchange: (ev) => {
      state.sort = ev.target.value;
      localStorage.setItem("mk.sort", state.sort);
      state.offset = 0;
      runSearch();
    } }, Object.entries(t("sorts")).map(([value, label]) =>
      el("option", { value, selected: value === state.sort }, label))),
    el("label", { for: "page-size" }, t("pageSize")),
    el("select", { id: "page-size", onchange: (ev) => {
      state.limit = Number(ev.target.value);
      localStorage.setItem("mk.limit", String(state.limit));
      state.offset = 0;
      runSearch();
    } }, [25, 50, 100, 200].map((n) => el("option", { value: n, selected: n === state.limit }, String(n)))));
  const summary = el("div", { class: "summary", role: "status" },
    el("span", {}, data.total ? `${first}–${last} ${t("of")} ${total}` : t("none")),
    el("span", { class: "pager" },
      el("button", { type: "button", disabled: state.offset === 0, onclick: () => {
        state.offset = Math.max(0, state.offset - state.limit); runSearch();
      } }, t("previous")),
      el("button", { type: "button", disabled: !more, onclick: () => {
        state.offset += state.limit; runSearch();
      } }, t("next"))));
  const rows = data.messages.map((m, i) => el("tr", { "aria-selected": "false", tabindex: "-1",
    "data-id": m.id, onclick: (ev) => { if (!ev.target.closest("input")) select(i); } },
    el("td", { class: "pick" }, el("input", { type: "checkbox", checked: state.chosen.has(m.id),
      "aria-label": t("select")(visible(m.subject) || t("noSubject")), onchange: (ev) => {
        if (ev.target.checked) state.chosen.add(m.id); else state.chosen.delete(m.id);
        const button = resultsBox.querySelector("#export-selected");
        button.textContent = t("exportSelected")(state.chosen.size);
        button.disabled = state.chosen.size === 0;
      } })),
    el("td", { class: "date" }, shortDate(m.date)),
    el("td", { class: "from" }, visible(m.from)),
    el("td", { class: "subject" }, visible(m.subject) || t("noSubject"),
      m.hasAttachment ? el("span", { "aria-label": t("attachments") }, " 📎") : null,
      (m.matchedAttachments || []).length ? el("div", { class: "matched" }, `${t("foundIn")} `,
        ...m.matchedAttachments.flatMap((name, k) => [k ? ", " : null,
          el("span", { class: "file" }, visible(name))]).filter(Boolean)) : null),
    el("td", { class: "size" }, human(m.size))));
  const table = el("table", { class: "list", role: "grid", "aria-label": t("results"),
    onkeydown: (ev) => {
      if (ev.key === "ArrowDown" && state.selected < state.results.length - 1) { select(state.selected + 1); ev.preventDefault(); }
      if (ev.key === "ArrowUp" && state.selected > 0) { select(state.selected - 1); ev.preventDefault(); }
    } },
    el("thead", {}, el("tr", {}, el("th", { class: "pick" }, el("span", { class: "sr-only" }, t("select")(""))),
      el("th", { class: "date" }, t("date")), el("th", { class: "from" }, t("from")),
      el("th", {}, t("subject")), el("th", { class: "size" }, t("size")))),
    el("tbody", {}, rows));
  const warnings = Object.entries(data.unavailable || {}).map(([name, why]) =>
    el("p", { class: "warning" }, `${visible(name)}: ${visible(why)}`));
  resultsBox.replaceChildren(summary, exportBox, ...warnings, table);
}

async function select(i) {
  state.selected = i;
  const rows = resultsBox.querySelectorAll("tbody tr");
  rows.forEach((row, k) => row.setAttribute("aria-selected", String(k === i)));
  rows[i]?.focus();
  const sender = senderOf(state.results[i].from);
  await openMessage(state.results[i].id, trusted().includes(sender));
}

// Senders whose remote images this browser always shows (the reader's own choice, kept here).
const trusted = () => JSON.parse(localStorage.getItem("mk.remote") || "[]");
const senderOf = (from) => ((/<([^<>]+)>/.exec(from || "") || [])[1] || from || "").trim().toLowerCase();

async function openMessage(id, remoteImages) {
  let m;
  try {
    m = await guarded(() => api("archive/message", { id, remoteImages }));
  } catch (err) {
    reader.replaceChildren(el("p", { role: "alert", class: "error" }, err.message));
    return;
  }
  if (!m) return;
  layout.classList.add("reading");
  reader.dataset.id = m.id;
  const subject = (m.headers.find(([n]) => n === "Subject") || [])[1];
  const sender = senderOf((m.headers.find(([n]) => n === "From") || [])[1]);
  const headers = el("dl", { class: "headers" }, m.headers.filter(([n]) => n !== "Subject")
    .map(([n, v]) => [el("dt", {}, n), el("dd", {}, visible(v))]));
  const body = m.bodyUrl
    ? el("iframe", { class: "body", title: t("body"), src: m.bodyUrl, sandbox: "allow-popups allow-popups-to-escape-sandbox",
      referrerpolicy: "no-referrer", loading: "lazy" })
    : el("pre", { class: "text", role: "document", "aria-label": t("body") }, visible(m.text));
  const parts = m.parts.filter((p) => p.attachment);
  const sourceBox = el("div");
  let sourceShown = false;
  const sourceButton = el("button", { type: "button", onclick: async () => {
    sourceShown = !sourceShown;
    sourceButton.textContent = sourceShown ? t("hideSource") : t("source");
    if (!sourceShown) { sourceBox.replaceChildren(); return; }
    const resp = await fetch(m.sourceUrl);
    const bytes = new Uint8Array(await resp.arrayBuffer());
    let text;
    try { text = new TextDecoder("utf-8", { fatal: true }).decode(bytes); }
    catch { text = new TextDecoder("latin1").decode(bytes); }
    sourceBox.replaceChildren(el("pre", { class: "source", "aria-label": t("source") }, visible(text)));
  } }, t("source"));
  reader.replaceChildren(...[
    el("button", { type: "button", class: "back", onclick: () => layout.classList.remove("reading") }, t("back")),
    el("h2", {}, visible(subject) || t("noSubject")),
    headers,
    el("div", { class: "actions" },
      el("a", { href: m.sourceUrl, download: "" }, t("original")),
      sourceButton,
      m.hasHtml && !m.remoteImages ? el("button", { type: "button", onclick: () => openMessage(id, true) }, t("remote")) : null,
      m.hasHtml && sender && !trusted().includes(sender) ? el("button", { type: "button", onclick: () => {
        localStorage.setItem("mk.remote", JSON.stringify([...trusted(), sender].slice(-500)));
        openMessage(id, true);
      } }, t("alwaysRemote")) : null,
      el("button", { type: "button", class: "full-toggle", "aria-pressed": String(layout.classList.contains("full")), onclick: (ev) => {
        const on = layout.classList.toggle("full");
        ev.currentTarget.setAttribute("aria-pressed", String(on));
      } }, t("fullView"))),
    m.warnings.length ? el("p", { class: "warning" }, `${t("warnings")}: ${m.warnings.map(visible).join("; ")}`) : null,
    body,
    parts.length ? el("section", { "aria-label": t("attachments") }, el("h3", {}, t("attachments")),
      el("ul", { class: "parts" }, parts.map((p) => el("li", {},
        el("a", { href: p.url, download: "" }, visible(p.name) || p.contentType),
        ` ${p.contentType}, ${human(p.size)}`,
        previewable(p) ? el("button", { type: "button", class: "small", onclick: (ev) => preview(p, ev.target) },
          t("preview")) : null)))) : null,
    sourceBox].filter(Boolean));
}

async function openAdmin() {
  const { renderAdmin } = await import("./admin.js");
  await renderAdmin({ el, api, guarded, visible, human, lang: state.lang, app, back: renderArchive, user: state.user });
}

// -- start ---------------------------------------------------------------------------------------
document.documentElement.lang = state.lang;
if (state.sid) {
  renderArchive().catch((err) => renderLogin(err.message));
} else {
  renderLogin();
}
