// A small Markdown renderer for chat answers, built on DOM APIs only: every piece of text
// becomes a text node (createTextNode / textContent), never HTML, so an answer cannot inject
// markup or script whatever it contains. Supported: paragraphs with line breaks, headings,
// fenced code blocks (with a Copy button), inline code, **bold**, *italic*, lists,
// blockquotes, rules, [links](https://…) and bare http(s) URLs. Links keep only http:,
// https: and mailto: targets and open in a new tab with rel="noopener noreferrer"; any
// other target (javascript:, data:, …) is shown as plain text. docs/launcher.md explains
// why this is written here instead of vendoring a library.
"use strict";
(function () {
  const FENCE = /^\s{0,3}(`{3,}|~{3,})\s*([\w+#.-]*)\s*$/;
  const HEADING = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
  const RULE = /^\s{0,3}([-*_])(\s*\1){2,}\s*$/;
  const ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
  const QUOTE = /^\s{0,3}>\s?(.*)$/;
  const INLINE = new RegExp(
    [
      "(`+)([\\s\\S]*?[^`])\\1(?!`)", // 1,2: code span
      "\\*\\*(?=\\S)([\\s\\S]*?\\S)\\*\\*", // 3: bold
      "(?<![A-Za-z0-9])__(?=\\S)([\\s\\S]*?\\S)__(?![A-Za-z0-9])", // 4: bold
      "\\*(?=[^\\s*])([^*]*?[^\\s*])\\*", // 5: italic
      "(?<![A-Za-z0-9])_(?=[^\\s_])([^_]*?[^\\s_])_(?![A-Za-z0-9])", // 6: italic
      "\\[([^\\]\\n]+)\\]\\(\\s*<?([^\\s()<>]+)>?\\s*\\)", // 7,8: link
      "(https?:\\/\\/[^\\s<>\"']*[^\\s<>\"'.,:;!?)\\]])", // 9: bare URL
    ].join("|"),
    "g",
  );

  function el(tag, cls) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    return e;
  }

  // Only http:, https: and mailto: links are made clickable.
  function safeHref(raw) {
    let url;
    try { url = new URL(raw, "https://invalid.example/"); } catch (e) { return null; }
    if (!/^(https?:|mailto:)$/.test(url.protocol)) return null;
    if (url.host === "invalid.example") return null; // a relative link: nothing to open
    return url.href;
  }

  // `source` is what the answer wrote; an unsafe link is shown as exactly that text.
  function link(href, label, parent, source) {
    const safe = safeHref(href);
    if (!safe) {
      parent.appendChild(document.createTextNode(source));
      return;
    }
    const a = el("a");
    a.href = safe;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    a.textContent = label;
    parent.appendChild(a);
  }

  function text(parent, s) {
    const parts = s.split("\n");
    parts.forEach((part, i) => {
      if (i > 0) parent.appendChild(el("br"));
      if (part) parent.appendChild(document.createTextNode(part));
    });
  }

  function inline(parent, s) {
    // A regex of its own: the recursive calls below must not move this scan's lastIndex.
    const re = new RegExp(INLINE.source, "g");
    let last = 0;
    let m;
    while ((m = re.exec(s)) !== null) {
      if (m.index > last) text(parent, s.slice(last, m.index));
      last = re.lastIndex;
      if (m[1] !== undefined) {
        const code = el("code");
        code.textContent = m[2].replace(/^ (.*) $/s, "$1");
        parent.appendChild(code);
      } else if (m[3] !== undefined || m[4] !== undefined) {
        const b = el("strong");
        inline(b, m[3] !== undefined ? m[3] : m[4]);
        parent.appendChild(b);
      } else if (m[5] !== undefined || m[6] !== undefined) {
        const i = el("em");
        inline(i, m[5] !== undefined ? m[5] : m[6]);
        parent.appendChild(i);
      } else if (m[7] !== undefined) {
        link(m[8], m[7], parent, m[0]);
      } else if (m[9] !== undefined) {
        link(m[9], m[9], parent, m[9]);
      }
    }
    if (last < s.length) text(parent, s.slice(last));
  }

  async function copyText(value) {
    if (navigator.clipboard && window.isSecureContext) {
      try { await navigator.clipboard.writeText(value); return true; } catch (e) { /* fall back */ }
    }
    // Plain-HTTP dashboards (no secure context): a hidden textarea and execCommand.
    const area = el("textarea", "offscreen");
    area.value = value;
    area.setAttribute("readonly", "");
    document.body.appendChild(area);
    area.select();
    let ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    area.remove();
    return ok;
  }

  function codeBlock(lang, body) {
    const box = el("div", "code-block");
    const bar = el("div", "code-bar");
    const name = el("span", "code-lang");
    name.textContent = lang || "code";
    const copy = el("button", "copy ghost");
    copy.type = "button";
    copy.textContent = "Copy";
    copy.addEventListener("click", async () => {
      const ok = await copyText(body);
      copy.textContent = ok ? "Copied" : "Copy failed";
      setTimeout(() => { copy.textContent = "Copy"; }, 1500);
    });
    bar.append(name, copy);
    const pre = el("pre");
    const code = el("code");
    code.textContent = body;
    pre.appendChild(code);
    box.append(bar, pre);
    return box;
  }

  function blocks(lines, parent) {
    let i = 0;
    const startsBlock = (l) => FENCE.test(l) || HEADING.test(l) || RULE.test(l) || ITEM.test(l) || QUOTE.test(l);
    while (i < lines.length) {
      const line = lines[i];
      let m;
      if (!line.trim()) { i++; continue; }
      if ((m = FENCE.exec(line))) {
        const close = new RegExp("^\\s{0,3}" + m[1][0] + "{" + m[1].length + ",}\\s*$");
        const body = [];
        i++;
        while (i < lines.length && !close.test(lines[i])) body.push(lines[i++]);
        i++; // the closing fence (an answer still streaming may not have it yet)
        parent.appendChild(codeBlock(m[2], body.join("\n")));
        continue;
      }
      if ((m = HEADING.exec(line))) {
        const h = el("h" + Math.min(m[1].length + 2, 6), "md-h");
        inline(h, m[2]);
        parent.appendChild(h);
        i++;
        continue;
      }
      if (RULE.test(line)) { parent.appendChild(el("hr")); i++; continue; }
      if (QUOTE.test(line)) {
        const inner = [];
        while (i < lines.length && (m = QUOTE.exec(lines[i]))) { inner.push(m[1]); i++; }
        const q = el("blockquote");
        blocks(inner, q);
        parent.appendChild(q);
        continue;
      }
      if ((m = ITEM.exec(line))) {
        const ordered = /\d/.test(m[2]);
        const list = el(ordered ? "ol" : "ul");
        if (ordered && parseInt(m[2], 10) !== 1) list.start = parseInt(m[2], 10);
        while (i < lines.length) {
          const item = ITEM.exec(lines[i]);
          if (!item || /\d/.test(item[2]) !== ordered) break;
          const content = [item[3]];
          i++;
          while (i < lines.length && lines[i].trim() && !ITEM.test(lines[i]) && !startsBlock(lines[i])) content.push(lines[i++].trim());
          const li = el("li");
          inline(li, content.join("\n"));
          list.appendChild(li);
        }
        parent.appendChild(list);
        continue;
      }
      const para = [];
      while (i < lines.length && lines[i].trim() && !startsBlock(lines[i])) para.push(lines[i++]);
      const p = el("p");
      inline(p, para.join("\n"));
      parent.appendChild(p);
    }
  }

  // Renders `source` into a new DocumentFragment.
  function render(source) {
    const frag = document.createDocumentFragment();
    blocks(String(source).replace(/\r\n?/g, "\n").split("\n"), frag);
    return frag;
  }

  window.PicoMarkdown = { render, copyText };
})();
