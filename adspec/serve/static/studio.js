// adspec studio: the live pages. Views come from /api (JSON) and server-sent events that the
// server sends each time a build writes its status; edits go back with the file's content hash.
"use strict";
const adspecStudio = (() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const el = (tag, attrs = {}, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
    }
    for (const k of kids) e.append(k);
    return e;
  };
  const usd = (x) => "$" + Number(x || 0).toFixed(2);
  const show = (node, text) => { node.hidden = !text; node.textContent = text || ""; };

  async function api(method, path, body) {
    const opts = {method, headers: {}, credentials: "same-origin"};
    if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    const r = await fetch(path, opts);
    let data = null;
    try { data = await r.json(); } catch (e) { data = {error: r.statusText}; }
    return {ok: r.ok, status: r.status, data};
  }

  function listen(path, event, onView) {
    const es = new EventSource(path);
    es.addEventListener(event, (e) => onView(JSON.parse(e.data)));
    return es;
  }

  // ---- the list of ads ---------------------------------------------------------------------------
  function index() {
    const body = $("#ads tbody");
    const render = (rows) => {
      show($("#empty"), rows.length ? "" : $("#empty").textContent);
      $("#empty").hidden = rows.length > 0;
      const shown = [];  // the rows in the list's order: an ad whose spec is gone is dropped
      for (const r of rows) {
        let tr = document.getElementById("ad-" + r.ad);
        if (!tr) {
          tr = el("tr", {id: "ad-" + r.ad},
            el("td", {class: "thumb"}), el("td", {}, el("a", {href: "/ads/" + encodeURIComponent(r.ad), text: r.ad})),
            el("td", {}, el("span", {class: "pill"})), el("td", {class: "progress"}), el("td", {class: "num spent"}),
            el("td", {class: "note"}));
        }
        shown.push(tr);
        const thumb = $(".thumb", tr);
        if (r.thumbnail && (!thumb.firstChild || thumb.firstChild.getAttribute("src") !== r.thumbnail)) {
          thumb.replaceChildren(el("img", {src: r.thumbnail, alt: "storyboard of " + r.ad}));
        }
        const pill = $(".pill", tr);
        pill.className = "pill " + r.state.replace(" ", "-");
        pill.textContent = r.state;
        $(".progress", tr).textContent = r.state === "running" ? `${Math.round(r.progress)}% ${r.phase || ""}` : "";
        $(".spent", tr).textContent = usd(r.cost.spent_usd);
        $(".note", tr).textContent = r.error || (r.refusal ? "not started: " + r.refusal : (r.title || ""));
      }
      body.replaceChildren(...shown);
    };
    // the stream's first event is the list too: a slower answer to this request must not draw an
    // older list over a newer one (a deleted ad's row came back and stayed)
    let streamed = false;
    api("GET", "/api/ads").then((r) => r.ok ? (streamed || render(r.data)) : show($("#problem"), r.data.error));
    listen("/api/events", "ads", (rows) => { streamed = true; render(rows); });
  }

  // ---- one ad ----------------------------------------------------------------------------------------
  function ad() {
    const name = decodeURIComponent(location.pathname.split("/ads/")[1] || "");
    let base = null;        // content hash of the beat file as this page loaded it (or last saved it)
    let onDisk = null;      // the hash the server last reported
    let saving = false;     // a save is on its way: its own write is not someone else's edit
    let editable = [];
    let built = false;      // beat cards drawn
    document.title = name + " · adspec";
    $("#ad").textContent = name;

    function card(b, written) {
      const fig = el("figure", {class: "beat", id: "beat-" + b.id, style: "margin:0"},
        el("div", {class: "frame"}, el("span", {class: "mute", text: "storyboard not built"})),
        el("figcaption", {class: "body"},
          el("div", {}, el("b", {text: b.id}), " ", el("span", {class: "pill", text: b.type || ""})),
          el("div", {class: "mute timing"}),
          el("ul", {class: "chunks"})));
      const body = $("figcaption", fig);
      for (const f of editable) {
        if (!written || typeof written.fields[f] !== "string") continue;
        const ta = el("textarea", {name: f, "data-field": f});
        ta.value = written.fields[f];
        ta.dataset.saved = written.fields[f];
        body.append(el("label", {text: f.replace("_", " ")}), ta);
      }
      if (written && Object.keys(written.fields).length) {
        const save = el("button", {type: "button", class: "save", text: "Save and rebuild"});
        save.addEventListener("click", () => saveBeat(b.id, fig));
        body.append(el("div", {}, save), el("div", {class: "msg"}));
      }
      return fig;
    }

    function drawBeats(view) {
      const grid = $("#storyboard");
      const written = new Map((view.source.beats || []).map((b) => [b.id, b]));
      const beats = view.beats.length ? view.beats : (view.source.beats || []);
      grid.replaceChildren(...beats.map((b) => card(b, written.get(b.id))));
      built = beats.length > 0;
    }

    function dirty() {
      return [...document.querySelectorAll("#storyboard textarea")].some((t) => t.value !== t.dataset.saved);
    }

    let lastState = null;
    let specError = "";     // why the estimate could not be made (the spec's or beat file's errors)
    let shownError = "";    // the build's own error, from the last view
    const sayError = () => show($("#error"), shownError ? "error: " + shownError : specError);
    async function priceBuild() {  // what the Build button would pay now (adspec estimate)
      const r = await api("POST", `/api/ads/${encodeURIComponent(name)}/estimate`);
      if (!r.ok) { $("#build-cost").textContent = ""; return; }
      const e = r.data;
      $("#build").disabled = Boolean(e.error);  // a spec with errors cannot be built: its errors are shown above
      specError = e.error || "";
      sayError();
      $("#build-cost").textContent = e.error ? "cannot be built as it is: fix the errors above"
        : e.refusal ? `over the budget: ${usd(e.total_usd)} of ${usd(e.budget_usd)}`
        : `a build now pays ${e.exact ? "" : "about "}${usd(e.total_usd)} (${e.targets.length} to make)`;
    }

    function sayChanged() {  // the notice shows exactly while the file on disk is not the one this page edits
      const changed = !saving && onDisk && base && onDisk !== base;
      show($("#notice"), changed ? `${$("#source-file").textContent} changed on disk since this page loaded: ` +
        "saving an edit is refused until you reload." : "");
    }

    function update(view) {
      if (view.state !== lastState && !["queued", "running"].includes(view.state)) priceBuild();
      lastState = view.state;
      $("#title").textContent = view.title || name;
      const st = $("#state");
      st.className = "pill " + view.state.replace(" ", "-");
      st.textContent = view.state;
      $("#phase").textContent = view.phase || "";
      $("#progress").value = view.progress;
      $("#pct").textContent = Math.round(view.progress) + "%";
      $("#chunks").textContent = view.chunks.total ? `chunk ${view.chunks.done} of ${view.chunks.total}` : "no chunks yet";
      $("#spent").textContent = usd(view.cost.spent_usd);
      $("#source-file").textContent = view.source.file || "";
      shownError = view.error || (view.refusal ? "not started: " + view.refusal : "");
      sayError();
      if (base === null && view.source.sha256) { base = view.source.sha256; editable = view.source.editable || []; }
      if (view.source.sha256) onDisk = view.source.sha256;
      sayChanged();
      if (!built || (!dirty() && $("#storyboard").children.length !== view.beats.length && view.beats.length)) drawBeats(view);
      for (const b of view.beats) {
        const fig = document.getElementById("beat-" + b.id);
        if (!fig) continue;
        $(".timing", fig).textContent = `${b.start}–${b.start + b.duration} s · ${b.duration} s · storyboard ${b.storyboard.state}`;
        const frame = $(".frame", fig);
        const img = $("img", frame);
        if (b.storyboard.url && (!img || img.getAttribute("src") !== b.storyboard.url)) {
          frame.replaceChildren(el("img", {src: b.storyboard.url, alt: "storyboard of " + b.id}));
        }
        const list = $(".chunks", fig);
        list.replaceChildren(...b.chunks.map((c) => {
          const li = el("li", {class: c.state, id: `chunk-${b.id}-${c.index}`});
          if (c.url && c.state !== "waiting") li.append(el("a", {href: c.url, text: `chunk ${c.index}`}));
          else li.textContent = `chunk ${c.index}`;
          li.append(" " + c.state);
          return li;
        }));
      }
      const video = $("#final");
      if (view.final) {
        if (video.getAttribute("src") !== view.final) video.setAttribute("src", view.final);
        video.hidden = false;
        $("#no-final").hidden = true;
      } else {
        video.hidden = true;
        $("#no-final").hidden = false;
        $("#no-final").textContent = view.state === "running" || view.state === "queued"
          ? "building: the final video appears here when it lands." : "final.mp4 is not built yet.";
      }
    }

    function estimateLine(r) {
      const e = r.estimate;
      if (!e) return "";
      const approx = e.exact ? "" : "about ";
      const what = `This build pays ${approx}${usd(e.total_usd)} for ${e.to_pay} request${e.to_pay === 1 ? "" : "s"} ` +
                   `(budget ${usd(e.budget_usd)} per run)`;
      return r.build === "queued" ? what + ": started." : what + ": not started. " + (r.refusal || "");
    }

    async function saveBeat(id, fig) {
      const fields = {};
      for (const t of fig.querySelectorAll("textarea")) if (t.value !== t.dataset.saved) fields[t.dataset.field] = t.value;
      const msg = $(".msg", fig);
      msg.className = "msg";
      if (!Object.keys(fields).length) { msg.textContent = "nothing changed"; return; }
      msg.textContent = "saving…";
      saving = true;
      const r = await api("PUT", `/api/ads/${encodeURIComponent(name)}/beats/${encodeURIComponent(id)}`, {sha256: base, fields})
        .finally(() => { saving = false; });
      if (!r.ok) {
        msg.className = "msg bad";
        msg.textContent = r.data.error;
        if (r.status === 409) show($("#notice"), r.data.error);
        return;
      }
      base = r.data.sha256;
      sayChanged();  // an update may have brought this save's own hash before the reply did
      for (const t of fig.querySelectorAll("textarea")) t.dataset.saved = t.value;
      msg.textContent = "saved to " + r.data.file;
      show($("#estimate"), estimateLine(r.data));
    }

    $("#build").addEventListener("click", async () => {
      const r = await api("POST", `/api/ads/${encodeURIComponent(name)}/build`);
      show($("#estimate"), r.ok ? estimateLine(r.data) : "not started: " + r.data.error);
    });

    api("GET", `/api/ads/${encodeURIComponent(name)}`).then((r) => {
      if (!r.ok) { show($("#error"), r.data.error); return; }
      update(r.data);
      const es = listen(`/api/ads/${encodeURIComponent(name)}/events`, "ad", update);
      es.addEventListener("gone", (e) => { es.close(); show($("#error"), JSON.parse(e.data).error); });
    });
  }

  return {index, ad};
})();
