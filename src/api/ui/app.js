// The meshd web UI: a plain ES module over the agent's own HTTP API (same origin), no framework and
// no build step. Views are picked from the location hash and re-rendered every few seconds. All data
// reaches the page as text nodes or attribute values, never as markup.

const POLL_MS = 5000;
const STATUSES = ['passing', 'warning', 'critical'];

const main = document.getElementById('main');
const statusBar = document.getElementById('status');

// --- DOM ------------------------------------------------------------------------------------------

/** Builds an element: `on*` attributes are listeners, other attributes are set as strings. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else if (name === 'value') el.value = value;
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  el.append(...nodes(children));
  return el;
}

function nodes(children) {
  const out = [];
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    out.push(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return out;
}

function table(headers, rows, empty) {
  if (rows.length === 0) return h('p', { class: 'muted' }, empty);
  return h(
    'table',
    null,
    h(
      'thead',
      null,
      h(
        'tr',
        null,
        headers.map((t) => h('th', null, t)),
      ),
    ),
    h(
      'tbody',
      null,
      rows.map((cells) =>
        h(
          'tr',
          null,
          cells.map((c) => h('td', null, c)),
        ),
      ),
    ),
  );
}

const badge = (status, text) => h('span', { class: `badge ${status}` }, text ?? status);
const tags = (list) => (list ?? []).map((t) => h('span', { class: 'tag' }, t));

/** Badges counting items per status (`{passing: 2, critical: 1}` → "2 passing" "1 critical"). */
function tally(counts) {
  const shown = STATUSES.filter((s) => counts[s] > 0).map((s) => badge(s, `${counts[s]} ${s}`));
  return shown.length ? shown : h('span', { class: 'muted' }, 'no checks');
}

// --- API ------------------------------------------------------------------------------------------

class ApiError extends Error {}

/** Fetches an API path; a 404 is `null` when `allow404`, any other failure throws with the body. */
async function api(path, { method = 'GET', body, allow404 = false } = {}) {
  const res = await fetch(path, { method, body, headers: { Accept: 'application/json' } });
  const text = await res.text();
  if (res.status === 404 && allow404) return null;
  if (!res.ok) throw new ApiError(`${method} ${path}: ${res.status} ${text.trim()}`);
  return text === '' ? null : JSON.parse(text);
}

const seg = (s) => encodeURIComponent(s);
/** A KV key as a URL path: each segment encoded, the slashes kept. */
const keyPath = (key) => key.split('/').map(seg).join('/');
const kvUrl = (key, query = '') => `/v1/kv/${keyPath(key)}${query}`;

/** The worst status of a list of checks; no checks is passing. */
function worst(checks) {
  let rank = 0;
  for (const c of checks ?? []) rank = Math.max(rank, STATUSES.indexOf(c.Status));
  return STATUSES[rank];
}

// --- Header ---------------------------------------------------------------------------------------

async function refreshHeader() {
  const [self, leader] = await Promise.all([
    api('/v1/agent/self', { allow404: true }).catch(() => null),
    api('/v1/status/leader').catch(() => undefined),
  ]);
  const item = (label, value, cls) => h('div', null, h('dt', null, label), h('dd', { class: cls }, value));
  statusBar.replaceChildren(
    item('Datacenter', self?.Config?.Datacenter ?? '?'),
    item('Node', self?.Config?.NodeName ?? '?'),
    item('Leader', leader || 'none', leader ? undefined : 'critical'),
    item('Version', self?.Config?.Version ?? '?'),
  );
}

// --- Services -------------------------------------------------------------------------------------

async function servicesView() {
  const services = (await api('/v1/catalog/services')) ?? {};
  const names = Object.keys(services).sort();
  const health = await Promise.all(names.map((n) => api(`/v1/health/service/${seg(n)}`)));
  const rows = names.map((name, i) => {
    const counts = { passing: 0, warning: 0, critical: 0 };
    for (const entry of health[i] ?? []) counts[worst(entry.Checks)]++;
    return [
      h('a', { href: `#/services/${seg(name)}` }, name),
      String(health[i]?.length ?? 0),
      tally(counts),
      tags(services[name]),
    ];
  });
  return [
    h('h2', null, `Services (${names.length})`),
    table(['Service', 'Instances', 'Instance health', 'Tags'], rows, 'No services registered.'),
  ];
}

function checkList(checks) {
  if (!checks?.length) return h('span', { class: 'muted' }, 'none');
  return checks.map((c) =>
    h(
      'details',
      null,
      h('summary', null, badge(c.Status), c.Name || c.CheckID),
      h('div', { class: 'muted' }, `CheckID ${c.CheckID}${c.ServiceID ? ` · service ${c.ServiceID}` : ''}`),
      c.Output ? h('pre', null, c.Output) : null,
    ),
  );
}

async function serviceView(name) {
  const entries = (await api(`/v1/health/service/${seg(name)}`)) ?? [];
  const rows = entries.map((e) => [
    h('span', { class: 'mono' }, e.Service.ID),
    h('a', { href: `#/nodes/${seg(e.Node.Node)}` }, e.Node.Node),
    h('span', { class: 'mono' }, `${e.Service.Address || e.Node.Address}:${e.Service.Port}`),
    tags(e.Service.Tags),
    checkList(e.Checks),
  ]);
  return [
    h('div', { class: 'crumbs' }, h('a', { href: '#/services' }, 'Services'), ' / ', name),
    h('h2', null, `${name} (${entries.length} instance${entries.length === 1 ? '' : 's'})`),
    table(['ID', 'Node', 'Address', 'Tags', 'Checks'], rows, 'No instances.'),
  ];
}

// --- Nodes ----------------------------------------------------------------------------------------

async function nodesView() {
  const nodeList = (await api('/v1/catalog/nodes')) ?? [];
  const checks = await Promise.all(nodeList.map((n) => api(`/v1/health/node/${seg(n.Node)}`)));
  const rows = nodeList.map((n, i) => {
    const counts = { passing: 0, warning: 0, critical: 0 };
    for (const c of checks[i] ?? []) if (c.Status in counts) counts[c.Status]++;
    return [
      h('a', { href: `#/nodes/${seg(n.Node)}` }, n.Node),
      h('span', { class: 'mono' }, n.Address),
      tally(counts),
      h('span', { class: 'mono muted' }, n.ID),
    ];
  });
  return [
    h('h2', null, `Nodes (${nodeList.length})`),
    table(['Node', 'Address', 'Checks', 'ID'], rows, 'No nodes.'),
  ];
}

async function nodeView(name) {
  const [info, checks] = await Promise.all([
    api(`/v1/catalog/node/${seg(name)}`, { allow404: true }),
    api(`/v1/health/node/${seg(name)}`),
  ]);
  const crumbs = h('div', { class: 'crumbs' }, h('a', { href: '#/nodes' }, 'Nodes'), ' / ', name);
  if (!info?.Node) return [crumbs, h('p', { class: 'error' }, `Node "${name}" not found.`)];
  const node = info.Node;
  const services = Object.values(info.Services ?? {}).sort((a, b) => a.ID.localeCompare(b.ID));
  const meta = Object.entries(node.Meta ?? {}).map(([k, v]) => h('span', { class: 'tag' }, `${k}=${v}`));
  return [
    crumbs,
    h('h2', null, name, ' ', badge(worst(checks))),
    h(
      'p',
      null,
      h('span', { class: 'mono' }, node.Address),
      ' · ',
      h('span', { class: 'mono muted' }, node.ID),
      ' · ',
      node.Datacenter,
      meta.length ? [' · ', meta] : null,
    ),
    h('h3', null, 'Health checks'),
    table(
      ['Status', 'Name', 'Service', 'Output'],
      (checks ?? []).map((c) => [
        badge(c.Status),
        c.Name || c.CheckID,
        c.ServiceName || h('span', { class: 'muted' }, 'node'),
        c.Output ? h('pre', null, c.Output) : '',
      ]),
      'No checks.',
    ),
    h('h3', null, 'Services'),
    table(
      ['ID', 'Service', 'Address', 'Tags'],
      services.map((s) => [
        h('span', { class: 'mono' }, s.ID),
        h('a', { href: `#/services/${seg(s.Service)}` }, s.Service),
        h('span', { class: 'mono' }, `${s.Address || node.Address}:${s.Port}`),
        tags(s.Tags),
      ]),
      'No services.',
    ),
  ];
}

// --- Key/Value ------------------------------------------------------------------------------------

/** Links to the root and each folder above `key`. */
function kvCrumbs(key) {
  const parts = key.split('/');
  const out = [h('a', { href: '#/kv/' }, 'Key/Value'), ' / '];
  for (let i = 0; i < parts.length - 1; i++) {
    const folder = `${parts.slice(0, i + 1).join('/')}/`;
    out.push(h('a', { href: `#/kv/${keyPath(folder)}` }, parts[i]), ' / ');
  }
  if (parts.at(-1)) out.push(parts.at(-1));
  return h('div', { class: 'crumbs' }, out);
}

const parentOf = (key) => key.slice(0, key.replace(/\/$/, '').lastIndexOf('/') + 1);

/** Deletes a key (or a folder's whole tree), then shows `then` (a hash) or re-renders. */
async function kvDelete(key, recurse, then) {
  const what = recurse ? `the folder "${key}" and everything under it` : `"${key}"`;
  if (!window.confirm(`Delete ${what}?`)) return;
  try {
    await api(kvUrl(key, recurse ? '?recurse' : ''), { method: 'DELETE' });
    if (then) location.hash = then;
    else render();
  } catch (err) {
    main.prepend(errorBox(err));
  }
}

async function kvFolderView(prefix) {
  const keys = (await api(kvUrl(prefix, '?keys&separator=/'), { allow404: true })) ?? [];
  const rows = keys
    .filter((k) => k !== prefix)
    .map((k) => {
      const folder = k.endsWith('/');
      return [
        h('a', { href: `#/kv/${keyPath(k)}` }, k.slice(prefix.length)),
        h('span', { class: 'muted' }, folder ? 'folder' : 'key'),
        h('button', { type: 'button', class: 'danger', onclick: () => kvDelete(k, folder) }, 'Delete'),
      ];
    });
  return [
    kvCrumbs(prefix),
    h(
      'div',
      { class: 'toolbar' },
      h('a', { href: `#/kv-new/${keyPath(prefix)}`, class: 'button primary' }, 'Create'),
    ),
    table(['Name', 'Type', ''], rows, prefix ? 'This folder is empty.' : 'No keys yet.'),
  ];
}

/** A base64 value as text, or `undefined` when it is not UTF-8. */
function decodeValue(b64) {
  const bytes = Uint8Array.from(atob(b64 ?? ''), (c) => c.charCodeAt(0));
  try {
    return { text: new TextDecoder('utf-8', { fatal: true }).decode(bytes), size: bytes.length };
  } catch {
    return { text: undefined, size: bytes.length };
  }
}

async function kvKeyView(key) {
  const rows = await api(kvUrl(key), { allow404: true });
  if (!rows?.length) return [kvCrumbs(key), h('p', { class: 'error' }, `Key "${key}" does not exist.`)];
  const entry = rows[0];
  const { text, size } = decodeValue(entry.Value);
  const note = h('span', { class: 'muted' });
  const value = h('textarea', {
    name: 'value',
    value: text ?? entry.Value ?? '',
    readonly: text === undefined,
  });
  const save = async (event) => {
    event.preventDefault();
    try {
      const ok = await api(kvUrl(key, `?cas=${entry.ModifyIndex}`), { method: 'PUT', body: value.value });
      if (ok) render();
      else note.replaceChildren(badge('critical', 'changed elsewhere since loaded; reload to see it'));
    } catch (err) {
      note.replaceChildren(errorBox(err));
    }
  };
  return [
    kvCrumbs(key),
    h('h2', { class: 'mono' }, key),
    h(
      'p',
      { class: 'muted' },
      `${size} bytes · flags ${entry.Flags} · create index ${entry.CreateIndex} · modify index ${entry.ModifyIndex}`,
      entry.Session ? ` · locked by session ${entry.Session}` : '',
    ),
    text === undefined ? h('p', { class: 'warning' }, 'Binary value, shown as base64 (read-only).') : null,
    h(
      'form',
      { onsubmit: save },
      value,
      h(
        'div',
        { class: 'toolbar' },
        text === undefined ? null : h('button', { type: 'submit', class: 'primary' }, 'Save'),
        h(
          'button',
          {
            type: 'button',
            class: 'danger',
            onclick: () => kvDelete(key, false, `#/kv/${keyPath(parentOf(key))}`),
          },
          'Delete',
        ),
        note,
      ),
    ),
  ];
}

function kvCreateView(prefix) {
  const name = h('input', {
    type: 'text',
    name: 'key',
    placeholder: 'name, or name/ for a folder',
    required: true,
  });
  const value = h('textarea', { name: 'value' });
  const note = h('span', { class: 'muted' });
  const create = async (event) => {
    event.preventDefault();
    const key = prefix + name.value;
    if (name.value === '' || name.value.startsWith('/')) {
      note.replaceChildren(badge('critical', 'a key name must not be empty or start with /'));
      return;
    }
    try {
      const body = key.endsWith('/') ? '' : value.value;
      const ok = await api(kvUrl(key, '?cas=0'), { method: 'PUT', body });
      if (ok) location.hash = `#/kv/${keyPath(key)}`;
      else note.replaceChildren(badge('critical', `"${key}" already exists`));
    } catch (err) {
      note.replaceChildren(errorBox(err));
    }
  };
  return [
    kvCrumbs(prefix),
    h('h2', null, 'Create key'),
    h(
      'form',
      { onsubmit: create },
      h('label', null, 'Key ', h('span', { class: 'mono muted' }, prefix), name),
      value,
      h('div', { class: 'toolbar' }, h('button', { type: 'submit', class: 'primary' }, 'Save'), note),
    ),
  ];
}

// --- Routing --------------------------------------------------------------------------------------

function decodePath(parts) {
  return parts
    .map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        return p;
      }
    })
    .join('/');
}

/** The view for the current hash: its tab, how to render it, and whether to keep it live. */
function currentView() {
  const [, tab = 'services', ...rest] = (location.hash.slice(1) || '/services').split('/');
  const arg = decodePath(rest);
  switch (tab) {
    case 'nodes':
      return { tab, poll: true, render: () => (arg ? nodeView(arg) : nodesView()) };
    case 'kv':
      if (arg === '' || arg.endsWith('/')) return { tab, poll: true, render: () => kvFolderView(arg) };
      return { tab, poll: false, render: () => kvKeyView(arg) };
    case 'kv-new':
      return { tab: 'kv', poll: false, render: () => kvCreateView(arg) };
    default:
      return { tab: 'services', poll: true, render: () => (arg ? serviceView(arg) : servicesView()) };
  }
}

function errorBox(err) {
  return h('p', { class: 'error' }, err instanceof ApiError ? err.message : `Request failed: ${err}`);
}

let generation = 0;
let timer;

/** Renders the current view now, then again every few seconds while it stays current and live. */
function render() {
  const gen = ++generation;
  clearTimeout(timer);
  const view = currentView();
  for (const a of document.querySelectorAll('nav a'))
    a.classList.toggle('active', a.dataset.tab === view.tab);
  let first = true;
  const tick = async () => {
    // A hidden tab is not refreshed; it is re-rendered when it shows again.
    if (first || !document.hidden) {
      first = false;
      let content;
      try {
        content = await view.render();
      } catch (err) {
        content = errorBox(err);
      }
      if (gen !== generation) return;
      main.replaceChildren(...nodes([content]));
    }
    if (view.poll && gen === generation) timer = setTimeout(tick, POLL_MS);
  };
  tick();
}

window.addEventListener('hashchange', render);
document.addEventListener('visibilitychange', () => {
  if (!document.hidden && currentView().poll) render();
});
refreshHeader();
setInterval(() => document.hidden || refreshHeader(), POLL_MS);
render();
