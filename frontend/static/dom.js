// Building the DOM: every text goes in by textContent, never as markup.

/** An element with its text (or none) and class (or none). */
export function el(tag, text = null, className = "") {
  const node = document.createElement(tag);
  if (text != null) node.textContent = text;
  if (className) node.className = className;
  return node;
}

/** A table row of <td>s from [text, className] pairs. */
export function tableRow(cells) {
  const row = document.createElement("tr");
  for (const [text, className] of cells) row.append(el("td", text, className));
  return row;
}

/** A header cell with its scope ("col", "row", "colgroup"). */
export function headerCell(text, scope, className = "") {
  const th = el("th", text, className);
  th.scope = scope;
  return th;
}

/** A link with its text. */
export function link(href, text) {
  const a = el("a", text);
  a.href = href;
  return a;
}

/** The first element of a <template>'s content, cloned. */
export function fromTemplate(template) {
  return template.content.firstElementChild.cloneNode(true);
}

/** The JSON a page embeds in a <script type="application/json" id=...>. */
export function pageData(id) {
  return JSON.parse(document.getElementById(id).textContent);
}
