// The compliance pages: the legal hold, who may read other people's mail (archive access),
// which events the audit log may leave out, the retention policies (with one message's
// retention and the processing), four-eyes deletion requests, and the tamper evidence (the
// public key, the signed tree heads, their export). Every value from the server goes into the
// page as text.

const WORDS = {
  en: {
    compliance: "Compliance", legalHold: "Legal hold", holdOn: "The archive is under legal hold: no message can be deleted, and no store compacted, merged or detached.",
    holdOff: "There is no legal hold.", setBy: "Set by", when: "When", reason: "Reason", placeHold: "Place the archive under legal hold",
    liftHold: "Lift the legal hold", saved: "Saved.", access: "Archive access",
    admins: "Administrators may read other users' messages", auditors: "Accounts with the privilege auditor may search and read every archive (each read is audited)",
    yourPassword: "Your password", accessHint: "Changing who may read other people's mail needs a reason and your password.",
    save: "Save", auditing: "Auditing", auditingHint: "Events that need not be recorded. Changes of these settings, everything only administrators do, and every read by an auditor are always recorded.",
    retention: "Retention policies", name: "Name", enabled: "Enabled", minimum: "Minimum", maximum: "Maximum",
    reference: "From the date", archived: "archived", sent: "sent", scope: "Scope (a search; empty: every message)",
    autoDelete: "Delete automatically after the maximum", none: "None.", edit: "Edit", delete: "Delete",
    newPolicy: "New policy", editPolicy: (n) => `Edit policy ${n}`, add: "Add", cancel: "Cancel",
    value: "Value", unit: "Unit", days: "days", months: "months", years: "years", noLimit: "—",
    fourEyes: "Four-eyes deletion: a deletion asked by one administrator needs a second one's approval",
    process: "Delete what is past its maximum now", processed: (r) => `${r.examined} messages examined, ${r.deleted} deleted${r.left ? `, ${r.left} left` : ""}.`,
    lookup: "One message's retention", messageId: "Message id", show: "Show", keepUntil: "Kept until", keptBy: "by",
    maxUntil: "Maximum until", deletable: "May be deleted now", yes: "yes", no: "no", policies: "Policies",
    requests: "Deletion requests", ask: "Ask for a deletion", approve: "Approve", reject: "Reject", requestedBy: "Asked by",
    state: "State", message: "Message", evidence: "Tamper evidence", publicKey: "Public key (checks the signed heads and every proof)",
    heads: "Latest signed head of each store", store: "Store", leaves: "Leaves", root: "Root", signedAt: "Signed",
    exportHeads: "Download all signed heads", mailHeads: "Mail the signed heads to", send: "Send", sentTo: (n) => `Sent ${n} heads.`,
    evidenceHint: "Keep the heads where the archive's administrators cannot change them; `mailkeep verify --heads FILE` then shows whether history was rewritten, and `mailkeep verify-proof` checks a message's proof with the public key alone.",
    confirmDelete: (n) => `Delete policy ${n}?`, confirmProcess: "Delete every message past its maximum retention now?",
  },
  ja: {
    compliance: "コンプライアンス", legalHold: "訴訟ホールド", holdOn: "アーカイブは訴訟ホールド中です。メッセージの削除、ストアの圧縮・統合・切り離しはできません。",
    holdOff: "訴訟ホールドはありません。", setBy: "設定者", when: "日時", reason: "理由", placeHold: "アーカイブを訴訟ホールドにする",
    liftHold: "訴訟ホールドを解除", saved: "保存しました。", access: "アーカイブへのアクセス",
    admins: "管理者は他のユーザーのメッセージを読める", auditors: "auditor 権限のアカウントはすべてのアーカイブを検索・閲覧できる (閲覧はすべて監査ログに記録)",
    yourPassword: "あなたのパスワード", accessHint: "他人のメールを読める人の変更には理由とパスワードが必要です。",
    save: "保存", auditing: "監査", auditingHint: "記録しなくてよいイベント。この設定の変更、管理者だけができる操作、監査人の閲覧は常に記録されます。",
    retention: "保持ポリシー", name: "名前", enabled: "有効", minimum: "最短", maximum: "最長",
    reference: "基準日", archived: "アーカイブ日", sent: "送信日", scope: "範囲 (検索式、空欄ならすべて)",
    autoDelete: "最長期間の後に自動で削除", none: "ありません。", edit: "編集", delete: "削除",
    newPolicy: "新しいポリシー", editPolicy: (n) => `ポリシー ${n} の編集`, add: "追加", cancel: "取り消し",
    value: "値", unit: "単位", days: "日", months: "か月", years: "年", noLimit: "—",
    fourEyes: "4 つの目による削除: ある管理者の削除依頼は別の管理者の承認が必要",
    process: "最長期間を過ぎたものを今すぐ削除", processed: (r) => `${r.examined} 件を確認、${r.deleted} 件を削除${r.left ? `、${r.left} 件は保留` : ""}。`,
    lookup: "メッセージの保持期間", messageId: "メッセージ ID", show: "表示", keepUntil: "保持期限", keptBy: "ポリシー",
    maxUntil: "最長期限", deletable: "今削除できる", yes: "はい", no: "いいえ", policies: "ポリシー",
    requests: "削除依頼", ask: "削除を依頼", approve: "承認", reject: "却下", requestedBy: "依頼者",
    state: "状態", message: "メッセージ", evidence: "改ざんの証拠", publicKey: "公開鍵 (署名済みヘッドと証明の検証に使います)",
    heads: "各ストアの最新の署名済みヘッド", store: "ストア", leaves: "葉の数", root: "ルート", signedAt: "署名日時",
    exportHeads: "署名済みヘッドをすべてダウンロード", mailHeads: "署名済みヘッドをメールで送る宛先", send: "送信", sentTo: (n) => `${n} 件のヘッドを送りました。`,
    evidenceHint: "ヘッドはアーカイブの管理者が変更できない場所に保管してください。`mailkeep verify --heads FILE` で履歴の書き換えがないか、`mailkeep verify-proof` で公開鍵だけで証明を確認できます。",
    confirmDelete: (n) => `ポリシー ${n} を削除しますか?`, confirmProcess: "最長保持期間を過ぎたメッセージを今すぐ削除しますか?",
  },
};
const SWITCHABLE = ["MessageRetrieveContent", "MessageSearch", "MessageExport", "login.failed"];
const UNITS = ["days", "months", "years"];

export function compliancePages(ctx) {
  const { el, visible, lang, call, byName, main, redraw, current, when, user } = ctx;
  const w = (key) => WORDS[lang][key] ?? WORDS.en[key];
  const may = (name) => byName.has(name);
  const fail = (err) => el("p", { role: "alert", class: "error" }, err.message);
  const period = (p) => (p ? `${p.value} ${w(p.unit)}` : w("noLimit"));
  const field = (id, label, input, hint) => el("div", { class: "arg" }, el("label", { for: id }, label), input, hint ? el("p", { class: "muted" }, hint) : null);
  const check = (id, label, on) => {
    const box = el("input", { id, type: "checkbox", checked: !!on });
    return [box, el("div", { class: "arg check" }, box, el("label", { for: id }, label))];
  };

  async function compliancePage(note = "") {
    const still = current();
    let conf, retention, requests, heads;
    try {
      [conf, retention] = await Promise.all([call("GetComplianceConfiguration"),
        may("GetRetentionPolicies") ? call("GetRetentionPolicies") : null]);
      requests = may("GetDeletionRequests") ? await call("GetDeletionRequests", { limit: 50 }) : [];
      heads = may("GetTreeHeads") ? await call("GetTreeHeads") : null;
    } catch (err) { if (still()) main.replaceChildren(fail(err)); return; }
    if (!conf || !still()) return;
    const say = el("p", { role: "status" }, note);
    const saved = (msg = w("saved")) => redraw(() => compliancePage(msg));
    main.replaceChildren(el("h2", {}, w("compliance")), say, holdCard(conf, say, saved), accessCard(conf, say, saved),
      auditingCard(conf, say, saved), retention ? retentionCard(retention, say, saved) : null,
      requestsCard(requests || [], say, saved), heads ? evidenceCard(heads, say) : null);
  }

  function holdCard(conf, say, saved) {
    const hold = conf.legalHold;
    const reason = el("input", { id: "hold-reason", type: "text", required: true, maxlength: 1000 });
    return el("section", { class: "card", "aria-label": w("legalHold") }, el("h2", {}, w("legalHold")),
      el("p", { class: hold.enabled ? "warning" : "muted" }, hold.enabled ? w("holdOn") : w("holdOff")),
      hold.setAt ? el("dl", { class: "headers" },
        el("dt", {}, w("setBy")), el("dd", {}, visible(hold.setBy)),
        el("dt", {}, w("when")), el("dd", {}, visible(hold.setAt)),
        el("dt", {}, w("reason")), el("dd", {}, visible(hold.reason))) : null,
      el("form", { class: "fn-form", onsubmit: async (ev) => {
        ev.preventDefault();
        try {
          await call("SetComplianceConfiguration", { config: { legalHold: { enabled: !hold.enabled, reason: reason.value } } });
          saved();
        } catch (err) { say.textContent = err.message; }
      } }, field("hold-reason", w("reason"), reason),
        el("div", { class: "actions" }, el("button", { type: "submit", class: "primary", disabled: !may("SetComplianceConfiguration") },
          hold.enabled ? w("liftHold") : w("placeHold")))));
  }

  function accessCard(conf, say, saved) {
    const a = conf.archiveAccess;
    const [admins, adminsRow] = check("acc-admins", w("admins"), a.administrators);
    const [auditors, auditorsRow] = check("acc-auditors", w("auditors"), a.auditors);
    const reason = el("input", { id: "acc-reason", type: "text", maxlength: 1000, required: true });
    const password = el("input", { id: "acc-password", type: "password", autocomplete: "current-password" });
    return el("section", { class: "card", "aria-label": w("access") }, el("h2", {}, w("access")),
      a.setAt ? el("dl", { class: "headers" },
        el("dt", {}, w("setBy")), el("dd", {}, visible(a.setBy)),
        el("dt", {}, w("when")), el("dd", {}, visible(a.setAt)),
        el("dt", {}, w("reason")), el("dd", {}, visible(a.reason))) : null,
      el("form", { class: "fn-form", onsubmit: async (ev) => {
        ev.preventDefault();
        try {
          await call("SetComplianceConfiguration", { config: { archiveAccess: {
            administrators: admins.checked, auditors: auditors.checked, reason: reason.value, password: password.value } } });
          password.value = "";
          saved();
        } catch (err) { password.value = ""; say.textContent = err.message; }
      } }, el("p", { class: "muted" }, w("accessHint")), adminsRow, auditorsRow,
        field("acc-reason", w("reason"), reason), field("acc-password", w("yourPassword"), password),
        el("div", { class: "actions" }, el("button", { type: "submit", class: "primary", disabled: !may("SetComplianceConfiguration") }, w("save")))));
  }

  function auditingCard(conf, say, saved) {
    const off = new Set(conf.auditing?.off || []);
    const boxes = SWITCHABLE.map((e, i) => check(`aud-${i}`, e, !off.has(e)));
    return el("section", { class: "card", "aria-label": w("auditing") }, el("h2", {}, w("auditing")),
      el("form", { class: "fn-form", onsubmit: async (ev) => {
        ev.preventDefault();
        try {
          await call("SetComplianceConfiguration", { config: { auditing: { off: SWITCHABLE.filter((_e, i) => !boxes[i][0].checked) } } });
          saved();
        } catch (err) { say.textContent = err.message; }
      } }, el("p", { class: "muted" }, w("auditingHint")), boxes.map((b) => b[1]),
        el("div", { class: "actions" }, el("button", { type: "submit", class: "primary", disabled: !may("SetComplianceConfiguration") }, w("save")))));
  }

  function retentionCard(conf, say, saved) {
    const editor = el("div");
    const result = el("div", { role: "status" });
    const writable = may("SetRetentionPolicies");
    const store = async (policies, fourEyes = conf.fourEyes) => {
      try { await call("SetRetentionPolicies", { config: { policies, fourEyes } }); saved(); } catch (err) { say.textContent = err.message; }
    };
    const periodInputs = (id, p) => {
      const value = el("input", { id: `${id}-v`, type: "number", min: 1, max: 73200, value: p ? p.value : "", "aria-label": `${w(id.endsWith("min") ? "minimum" : "maximum")}: ${w("value")}` });
      const unit = el("select", { id: `${id}-u`, "aria-label": `${w(id.endsWith("min") ? "minimum" : "maximum")}: ${w("unit")}` },
        UNITS.map((u) => el("option", { value: u, selected: (p ? p.unit : "years") === u }, w(u))));
      return [value, unit, () => (value.value ? { value: Number(value.value), unit: unit.value } : null)];
    };
    const edit = (index) => {
      const p = index === null ? { name: "", enabled: true, minimum: null, maximum: null, referenceDate: "archived", scope: "", deleteAutomatically: false } : conf.policies[index];
      const name = el("input", { id: "pol-name", type: "text", value: p.name, required: true, maxlength: 100 });
      const [enabled, enabledRow] = check("pol-enabled", w("enabled"), p.enabled);
      const [minV, minU, minOf] = periodInputs("pol-min", p.minimum);
      const [maxV, maxU, maxOf] = periodInputs("pol-max", p.maximum);
      const ref = el("select", { id: "pol-ref" }, ["archived", "sent"].map((r) => el("option", { value: r, selected: p.referenceDate === r }, w(r))));
      const scope = el("input", { id: "pol-scope", type: "text", value: p.scope, maxlength: 1000, placeholder: "folder:alice/Invoices" });
      const [auto, autoRow] = check("pol-auto", w("autoDelete"), p.deleteAutomatically);
      editor.replaceChildren(el("form", { class: "fn-form", "aria-label": index === null ? w("newPolicy") : w("editPolicy")(visible(p.name)), onsubmit: (ev) => {
        ev.preventDefault();
        const next = { name: name.value, enabled: enabled.checked, minimum: minOf(), maximum: maxOf(), referenceDate: ref.value, scope: scope.value, deleteAutomatically: auto.checked };
        const all = conf.policies.slice();
        if (index === null) all.push(next); else all[index] = next;
        store(all);
      } }, el("h3", {}, index === null ? w("newPolicy") : w("editPolicy")(visible(p.name))),
        field("pol-name", w("name"), name), enabledRow,
        el("div", { class: "arg" }, el("label", { for: "pol-min-v" }, w("minimum")), el("div", { class: "pair" }, minV, minU)),
        el("div", { class: "arg" }, el("label", { for: "pol-max-v" }, w("maximum")), el("div", { class: "pair" }, maxV, maxU)),
        field("pol-ref", w("reference"), ref), field("pol-scope", w("scope"), scope), autoRow,
        el("div", { class: "actions" }, el("button", { type: "submit", class: "primary", disabled: !writable }, w("save")),
          el("button", { type: "button", onclick: () => editor.replaceChildren() }, w("cancel")))));
      name.focus();
    };
    const [fourEyes, fourEyesRow] = check("ret-foureyes", w("fourEyes"), conf.fourEyes);
    fourEyes.disabled = !writable;
    fourEyes.onchange = () => store(conf.policies, fourEyes.checked);
    const lookupId = el("input", { id: "ret-id", type: "text", placeholder: "1:42", maxlength: 40 });
    return el("section", { class: "card", "aria-label": w("retention") }, el("h2", {}, w("retention")),
      conf.policies.length ? el("table", { class: "list" },
        el("thead", {}, el("tr", {}, [w("name"), w("enabled"), w("minimum"), w("maximum"), w("reference"), w("scope"), w("autoDelete"), ""].map((h) => el("th", {}, h)))),
        el("tbody", {}, conf.policies.map((p, i) => el("tr", {},
          el("td", {}, visible(p.name)), el("td", {}, p.enabled ? w("yes") : w("no")),
          el("td", {}, period(p.minimum)), el("td", {}, period(p.maximum)), el("td", {}, w(p.referenceDate)),
          el("td", { class: "code" }, visible(p.scope || "*")), el("td", {}, p.deleteAutomatically ? w("yes") : w("no")),
          el("td", {},
            el("button", { type: "button", class: "small", disabled: !writable, "aria-label": `${w("edit")} ${visible(p.name)}`, onclick: () => edit(i) }, w("edit")),
            el("button", { type: "button", class: "small", disabled: !writable, "aria-label": `${w("delete")} ${visible(p.name)}`, onclick: () => {
              if (window.confirm(w("confirmDelete")(visible(p.name)))) store(conf.policies.filter((_q, j) => j !== i));
            } }, w("delete"))))))) : el("p", { class: "muted" }, w("none")),
      el("div", { class: "actions" },
        el("button", { type: "button", disabled: !writable, onclick: () => edit(null) }, w("newPolicy")),
        el("button", { type: "button", disabled: !may("ProcessRetentionPolicies"), onclick: async () => {
          if (!window.confirm(w("confirmProcess"))) return;
          try { result.textContent = w("processed")(await call("ProcessRetentionPolicies")); } catch (err) { result.textContent = err.message; }
        } }, w("process"))),
      editor, fourEyesRow,
      el("form", { class: "inline", onsubmit: async (ev) => {
        ev.preventDefault();
        try {
          const r = await call("GetMessageRetention", { id: lookupId.value });
          result.replaceChildren(el("dl", { class: "headers" },
            el("dt", {}, w("policies")), el("dd", {}, r.policies.length ? r.policies.map((p) => visible(p.name)).join(", ") : w("none")),
            el("dt", {}, w("keepUntil")), el("dd", {}, r.keepUntil ? `${when(r.keepUntil)} (${w("keptBy")} ${visible(r.keptBy)})` : "–"),
            el("dt", {}, w("maxUntil")), el("dd", {}, r.maximumUntil ? `${when(r.maximumUntil)} (${visible(r.maximumBy)})` : "–"),
            el("dt", {}, w("legalHold")), el("dd", {}, r.legalHold ? w("yes") : w("no")),
            el("dt", {}, w("deletable")), el("dd", {}, r.deletableNow ? w("yes") : w("no"))));
        } catch (err) { result.textContent = err.message; }
      } }, el("label", { for: "ret-id" }, w("lookup")), lookupId,
        el("button", { type: "submit", disabled: !may("GetMessageRetention") }, w("show"))),
      result);
  }

  function requestsCard(requests, say, saved) {
    const id = el("input", { id: "req-id", type: "text", placeholder: "1:42", maxlength: 40 });
    const reason = el("input", { id: "req-reason", type: "text", maxlength: 1000 });
    const me = String(user).toLowerCase();
    const act = async (fn, args) => { try { await call(fn, args); saved(); } catch (err) { say.textContent = err.message; } };
    return el("section", { class: "card", "aria-label": w("requests") }, el("h2", {}, w("requests")),
      requests.length ? el("table", { class: "list" },
        el("thead", {}, el("tr", {}, [w("message"), w("reason"), w("requestedBy"), w("when"), w("state"), ""].map((h) => el("th", {}, h)))),
        el("tbody", {}, requests.map((r) => {
          const mine = String(r.requestedBy).split(":").slice(1).join(":").toLowerCase() === me;
          return el("tr", {}, el("td", { class: "code" }, visible(r.messageId)), el("td", {}, visible(r.reason)),
            el("td", {}, visible(r.requestedBy)), el("td", {}, when(r.requestedAt)),
            el("td", {}, visible(r.state) + (r.decidedBy ? ` (${visible(r.decidedBy)})` : "") + (r.note ? `: ${visible(r.note)}` : "")),
            el("td", {}, r.state === "pending" ? [
              el("button", { type: "button", class: "small", disabled: mine || !may("ApproveMessageDeletion"), "aria-label": `${w("approve")} ${visible(r.messageId)}`,
                onclick: () => act("ApproveMessageDeletion", { requestId: r.id }) }, w("approve")),
              el("button", { type: "button", class: "small", disabled: mine || !may("RejectMessageDeletion"), "aria-label": `${w("reject")} ${visible(r.messageId)}`,
                onclick: () => act("RejectMessageDeletion", { requestId: r.id }) }, w("reject"))] : null));
        }))) : el("p", { class: "muted" }, w("none")),
      el("form", { class: "inline", onsubmit: (ev) => { ev.preventDefault(); act("RequestMessageDeletion", { id: id.value, reason: reason.value }); } },
        el("label", { for: "req-id" }, w("messageId")), id, el("label", { for: "req-reason" }, w("reason")), reason,
        el("button", { type: "submit", disabled: !may("RequestMessageDeletion") }, w("ask"))));
  }

  function evidenceCard(got, say) {
    const latest = new Map();
    for (const h of got.heads) {
      const had = latest.get(h.store);
      if (!had || h.size > had.size || (h.size === had.size && h.at > had.at)) latest.set(h.store, h);
    }
    const to = el("input", { id: "heads-to", type: "email", maxlength: 254, placeholder: "auditor@example.org" });
    const download = () => {
      const text = [JSON.stringify({ publicKey: got.publicKey }), ...got.heads.map((h) => JSON.stringify(h))].join("\n") + "\n";
      const a = el("a", { href: URL.createObjectURL(new Blob([text], { type: "application/x-ndjson" })), download: "mailkeep-heads.jsonl" });
      document.body.append(a); a.click(); a.remove();
    };
    return el("section", { class: "card", "aria-label": w("evidence") }, el("h2", {}, w("evidence")),
      el("p", { class: "muted" }, w("evidenceHint")),
      el("p", { class: "muted", id: "pub-label" }, w("publicKey")),
      el("p", { class: "code wrap", "aria-labelledby": "pub-label" }, visible(got.publicKey)),
      latest.size ? el("table", { class: "list" },
        el("thead", {}, el("tr", {}, [w("store"), w("leaves"), w("signedAt"), w("root")].map((h) => el("th", {}, h)))),
        el("tbody", {}, [...latest.values()].map((h) => el("tr", {},
          el("td", { class: "code" }, visible(h.store)), el("td", {}, String(h.size)),
          el("td", {}, new Date(h.at * 1000).toISOString().replace("T", " ").slice(0, 16)),
          el("td", { class: "code wrap" }, visible(h.root)))))) : el("p", { class: "muted" }, w("none")),
      el("div", { class: "actions" }, el("button", { type: "button", onclick: download }, w("exportHeads"))),
      el("form", { class: "inline", onsubmit: async (ev) => {
        ev.preventDefault();
        try { const r = await call("SendTreeHeads", { to: to.value }); say.textContent = w("sentTo")(r.heads); } catch (err) { say.textContent = err.message; }
      } }, el("label", { for: "heads-to" }, w("mailHeads")), to,
        el("button", { type: "submit", disabled: !may("SendTreeHeads") }, w("send"))));
  }

  return { compliancePage };
}
