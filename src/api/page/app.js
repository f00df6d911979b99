// semdex's browser page. Plain JavaScript, no build step: everything goes through the public
// HTTP API, with the API key (when the server asks for one) kept in sessionStorage.
(() => {
  'use strict';

  const KEY_STORAGE = 'semdex.apiKey';
  const CONTEXT_CHARS = 220; // context shown either side of a passage
  const PAGE_SIZE = 50; // documents per page
  const DOC_CACHE_SIZE = 16; // documents kept for context

  const $ = (id) => document.getElementById(id);
  const utf8 = new TextEncoder();
  const fromUtf8 = new TextDecoder('utf-8');

  const state = {
    info: null, // GET /info, once it answered
    modes: null, // search modes from /info, when the server has them
    defaultMode: null,
    collections: null, // [{name, documents, chunks}] when the server has collections
    docs: new Map(), // "collection\u0000id" -> Promise<{text, bytes}>
    searchSeq: 0,
    viewSeq: 0,
    listOffset: 0,
    lastSearchUrl: null,
    memoryKey: '', // the API key, when sessionStorage is unavailable
    keyDeclined: false, // the person cancelled the key dialog; background calls do not reopen it
  };

  // ---------------------------------------------------------------------------------------
  // The API: fetch (or XMLHttpRequest when upload progress is wanted), the key, errors.

  /** An error answer of the API (or no answer at all: status 0). */
  class ApiError extends Error {
    constructor(status, code, message, retryAfter) {
      super(message);
      this.status = status;
      this.code = code;
      this.retryAfter = retryAfter;
    }
  }

  function storedKey() {
    try {
      return sessionStorage.getItem(KEY_STORAGE) || '';
    } catch (_) {
      return state.memoryKey || '';
    }
  }

  function storeKey(key) {
    state.memoryKey = key;
    try {
      if (key) sessionStorage.setItem(KEY_STORAGE, key);
      else sessionStorage.removeItem(KEY_STORAGE);
    } catch (_) { /* private mode: the in-memory copy serves */ }
  }

  function parseBody(text) {
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch (_) {
      return null;
    }
  }

  /** One HTTP exchange; resolves to {status, data, retryAfter} or rejects with status 0. */
  function send(method, path, key, { body, file, onUpload, signal } = {}) {
    const headers = { Accept: 'application/json' };
    if (key) headers.Authorization = `Bearer ${key}`;
    // A file goes as it is, its type telling the server its format (the server reads the
    // content first; an unknown type leaves it to the content alone).
    const payload = file !== undefined ? file : body === undefined ? undefined : JSON.stringify(body);
    if (file !== undefined) headers['Content-Type'] = fileType(file);
    else if (payload !== undefined) headers['Content-Type'] = 'application/json';
    const unreachable = () => new ApiError(0, 'network',
      'The semdex server could not be reached. Is it still running?');
    if (onUpload) {
      return new Promise((resolve, reject) => {
        const xhr = new XMLHttpRequest();
        xhr.open(method, path);
        for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
        xhr.upload.onprogress = (e) => onUpload(e.loaded, e.lengthComputable ? e.total : 0, false);
        xhr.upload.onload = () => onUpload(1, 1, true);
        xhr.onload = () => resolve({
          status: xhr.status,
          data: parseBody(xhr.responseText),
          retryAfter: xhr.getResponseHeader('Retry-After'),
        });
        xhr.onerror = () => reject(unreachable());
        xhr.ontimeout = () => reject(unreachable());
        xhr.send(payload === undefined ? null : payload);
      });
    }
    return fetch(path, { method, headers, body: payload, signal, cache: 'no-store' })
      .catch((e) => {
        if (e && e.name === 'AbortError') throw e;
        throw unreachable();
      })
      .then(async (r) => ({
        status: r.status,
        data: parseBody(await r.text()),
        retryAfter: r.headers.get('Retry-After'),
      }));
  }

  /** The Content-Type a file is sent with: the browser's, else one its name implies. */
  function fileType(file) {
    const known = {
      pdf: 'application/pdf', html: 'text/html', htm: 'text/html', md: 'text/markdown',
      markdown: 'text/markdown', txt: 'text/plain',
      docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
    };
    const ext = (file.name.match(/\.([^.]+)$/) || [])[1];
    const byName = ext && known[ext.toLowerCase()];
    if (file.type && Object.values(known).includes(file.type)) return file.type;
    return byName || 'application/octet-stream';
  }

  /**
   * Calls the API and returns the parsed JSON body. On 401 it asks for the API key (once for
   * all concurrent calls) and retries; other failures reject with an ApiError.
   */
  async function api(method, path, options) {
    for (;;) {
      const key = storedKey();
      const r = await send(method, path, key, options);
      if (r.status === 401) {
        // After a cancelled prompt, background calls fail quietly until the person acts.
        const given = state.keyDeclined ? null
          : await askForKey(key ? 'That API key was not accepted. Check it and try again.' : '');
        if (given === null) {
          state.keyDeclined = true;
          throw new ApiError(401, 'unauthorized',
            'This server needs an API key; without one the page cannot show anything.');
        }
        continue;
      }
      if (r.status < 200 || r.status >= 300) {
        const err = r.data && r.data.error ? r.data.error : {};
        throw new ApiError(r.status, err.code || 'error',
          err.message || `the server answered ${r.status}`, r.retryAfter);
      }
      return r.data;
    }
  }

  /** What went wrong, in words a person can act on. */
  function describe(err) {
    if (!(err instanceof ApiError)) return `Something went wrong in the page: ${err && err.message ? err.message : err}`;
    const m = sentence(err.message);
    switch (err.status) {
      case 0: return m;
      case 401: return m;
      case 404: return `Not found: ${m}`;
      case 413: return `That is too large for the server: ${m}`;
      case 415: return `That is not a file semdex reads: ${m}`;
      case 422: return `The server did not accept that: ${m}`;
      case 429: {
        const wait = Number(err.retryAfter) > 0 ? `${err.retryAfter} second${err.retryAfter === '1' ? '' : 's'}` : 'a moment';
        return `The server is busy (too many requests waiting). Try again in ${wait}. ${m}`;
      }
      case 503: return `The server cannot answer right now: ${m} Try again shortly.`;
      default: return `The server answered ${err.status}: ${m}`;
    }
  }

  function sentence(text) {
    const t = String(text || '').trim();
    if (!t) return '';
    const first = t.charAt(0).toUpperCase() + t.slice(1);
    return /[.!?]$/.test(first) ? first : `${first}.`;
  }

  // ---------------------------------------------------------------------------------------
  // The API key dialog.

  let keyPrompt = null;

  /** Asks for the key; resolves to it, or to null when the person cancels. */
  function askForKey(problem) {
    if (keyPrompt) {
      // Several calls failed together: one dialog serves them all.
      if (problem) $('key-error').textContent = problem;
      return keyPrompt;
    }
    const dialog = $('key-dialog');
    const input = $('key-input');
    const error = $('key-error');
    keyPrompt = new Promise((resolve) => {
      error.textContent = problem;
      input.value = '';
      input.setAttribute('aria-invalid', problem ? 'true' : 'false');
      const finish = (value) => {
        $('key-form').removeEventListener('submit', onSubmit);
        $('key-cancel').removeEventListener('click', onCancel);
        dialog.removeEventListener('cancel', onCancel);
        if (dialog.open) dialog.close();
        keyPrompt = null;
        resolve(value);
      };
      const onSubmit = (e) => {
        e.preventDefault();
        const key = input.value.trim();
        if (!key) {
          error.textContent = 'Enter the API key, or cancel.';
          input.setAttribute('aria-invalid', 'true');
          input.focus();
          return;
        }
        if (!/^[\x21-\x7e]+$/.test(key)) {
          error.textContent = 'An API key is made of visible ASCII characters only; check for typos.';
          input.setAttribute('aria-invalid', 'true');
          input.focus();
          return;
        }
        storeKey(key);
        finish(key);
      };
      const onCancel = (e) => {
        e.preventDefault();
        finish(null);
      };
      $('key-form').addEventListener('submit', onSubmit);
      $('key-cancel').addEventListener('click', onCancel);
      dialog.addEventListener('cancel', onCancel);
      if (!dialog.open) dialog.showModal();
      input.focus();
    });
    return keyPrompt;
  }

  // ---------------------------------------------------------------------------------------
  // Notices: errors and news in the alert region at the top.

  function notify(message, kind = 'error', action = null) {
    const box = $('notice');
    box.replaceChildren();
    box.className = `notice ${kind}`;
    if (!message) return;
    const p = el('p', { className: 'notice-text' }, message);
    box.append(p);
    if (action) {
      box.append(el('button', { type: 'button', className: 'notice-action', onclick: action.run }, action.label));
    }
    box.append(el('button', {
      type: 'button', className: 'notice-close', 'aria-label': 'Dismiss message',
      onclick: () => notify(''),
    }, '×'));
  }

  function notifyError(err) {
    if (err && err.name === 'AbortError') return;
    if (err instanceof ApiError && err.status === 401) {
      notify(describe(err), 'error', { label: 'Enter API key', run: retryWithKey });
      return;
    }
    notify(describe(err), 'error');
  }

  async function retryWithKey() {
    notify('');
    state.keyDeclined = false;
    const key = await askForKey('');
    if (key !== null) boot();
  }

  // ---------------------------------------------------------------------------------------
  // DOM helpers. Text always goes in through text nodes, never as HTML.

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'className') node.className = value;
      else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else if (name === 'dataset') Object.assign(node.dataset, value);
      else node.setAttribute(name, value === true ? '' : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function plural(n, one, many = `${one}s`) {
    return `${n.toLocaleString()} ${n === 1 ? one : many}`;
  }

  function formatBytes(n) {
    if (n < 1000) return plural(n, 'byte');
    if (n < 1e6) return `${(n / 1e3).toFixed(n < 1e4 ? 1 : 0)} kB`;
    return `${(n / 1e6).toFixed(1)} MB`;
  }

  function formatDate(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  }

  function formatScore(x) {
    if (typeof x !== 'number' || !Number.isFinite(x)) return '–';
    const a = Math.abs(x);
    if (a !== 0 && a < 0.01) return x.toPrecision(2);
    if (a >= 100) return x.toFixed(0);
    if (a >= 10) return x.toFixed(1);
    return x.toFixed(3);
  }

  function metadataText(value) {
    return typeof value === 'string' ? value : JSON.stringify(value);
  }

  // ---------------------------------------------------------------------------------------
  // Query words: marked with <mark> wherever a passage is shown.

  const STOP_WORDS = new Set(('a an and are as at be but by can could did do does for from had has have how i if in '
    + 'into is it its of on or so than that the their then there these they this those to was were what when where '
    + 'which who whom whose why will with would you your about after before between over under up out').split(' '));

  /** A regular expression for the query's words (and words that start with them), or null. */
  function termPattern(query) {
    const words = (String(query || '').toLowerCase().match(/[\p{L}\p{N}]+/gu) || [])
      .filter((w) => !STOP_WORDS.has(w) && (w.length > 1 || /\p{N}|[^\x00-\x7f]/u.test(w)));
    const unique = [...new Set(words)].sort((a, b) => b.length - a.length).slice(0, 32);
    if (!unique.length) return null;
    const parts = unique.map((w) => {
      const escaped = w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      // Short words match whole; longer ones also match inflections (meet → meeting).
      return w.length >= 4 ? `${escaped}[\\p{L}\\p{N}]*` : escaped;
    });
    return new RegExp(`(?<![\\p{L}\\p{N}])(?:${parts.join('|')})(?![\\p{L}\\p{N}])`, 'giu');
  }

  /** Appends `text` to `parent`, with the pattern's matches in <mark>. */
  function appendMarked(parent, text, pattern) {
    if (!pattern || !text) {
      parent.append(document.createTextNode(text));
      return;
    }
    let at = 0;
    for (const m of text.matchAll(pattern)) {
      if (m.index > at) parent.append(document.createTextNode(text.slice(at, m.index)));
      parent.append(el('mark', {}, m[0]));
      at = m.index + m[0].length;
    }
    if (at < text.length) parent.append(document.createTextNode(text.slice(at)));
  }

  // ---------------------------------------------------------------------------------------
  // Documents and byte offsets. The API's offsets count UTF-8 bytes; JavaScript strings count
  // UTF-16 units, so text is sliced as bytes and decoded.

  /** Moves a byte offset back to the start of the character it falls in. */
  function charBoundary(bytes, i) {
    let at = Math.max(0, Math.min(i, bytes.length));
    while (at > 0 && at < bytes.length && (bytes[at] & 0xc0) === 0x80) at -= 1;
    return at;
  }

  function decodeBytes(bytes, start, end) {
    return fromUtf8.decode(bytes.subarray(charBoundary(bytes, start), charBoundary(bytes, end)));
  }

  function collectionPrefix() {
    const c = currentCollection();
    return c && c !== 'default' ? `/collections/${encodeURIComponent(c)}` : '';
  }

  /** A stored document with its UTF-8 bytes; cached for a few documents. */
  function loadDocument(id, { fresh = false } = {}) {
    const cacheKey = `${currentCollection()}\u0000${id}`;
    if (!fresh && state.docs.has(cacheKey)) {
      const hit = state.docs.get(cacheKey);
      state.docs.delete(cacheKey); // most recently used last
      state.docs.set(cacheKey, hit);
      return hit;
    }
    const loading = api('GET', `${collectionPrefix()}/documents/${encodeURIComponent(id)}`)
      .then((doc) => ({ ...doc, bytes: utf8.encode(doc.text) }));
    loading.catch(() => state.docs.delete(cacheKey));
    state.docs.set(cacheKey, loading);
    while (state.docs.size > DOC_CACHE_SIZE) state.docs.delete(state.docs.keys().next().value);
    return loading;
  }

  function forgetDocument(id) {
    for (const k of [...state.docs.keys()]) if (k.endsWith(`\u0000${id}`)) state.docs.delete(k);
  }

  /** Up to `chars` characters of `text` from its end (`fromEnd`) or start, cut at a word. */
  function clip(text, chars, fromEnd) {
    const cps = Array.from(text);
    if (cps.length <= chars) return { text, cut: false };
    let kept = fromEnd ? cps.slice(cps.length - chars).join('') : cps.slice(0, chars).join('');
    const space = fromEnd ? kept.search(/\s/) : kept.search(/\s\S*$/);
    if (space > 0 && (fromEnd ? space : kept.length - space) < 40) {
      kept = fromEnd ? kept.slice(space + 1) : kept.slice(0, space);
    }
    return { text: kept, cut: true };
  }

  /** Text for an excerpt: no blank lines, no whitespace at either end. */
  function tidy(text) {
    return text.replace(/[ \t]*\n\s*/g, '\n').trim();
  }

  /** The text around a passage: [before, passage, after] with ellipses where cut. */
  function context(doc, start, end) {
    const { bytes } = doc;
    const span = CONTEXT_CHARS * 4; // bytes enough for CONTEXT_CHARS characters of any script
    const before = clip(decodeBytes(bytes, start - span, start), CONTEXT_CHARS, true);
    const after = clip(decodeBytes(bytes, end, end + span), CONTEXT_CHARS, false);
    const cutBefore = before.cut || charBoundary(bytes, start - span) > 0;
    const cutAfter = after.cut || end + span < bytes.length;
    const beforeText = tidy(before.text);
    const afterText = tidy(after.text);
    return {
      before: beforeText && (cutBefore ? '…' : '') + beforeText,
      passage: tidy(decodeBytes(bytes, start, end)),
      after: afterText && afterText + (cutAfter ? '…' : ''),
    };
  }

  // ---------------------------------------------------------------------------------------
  // Capabilities: /info (modes, counts) and /collections (when the server has them).

  async function loadInfo() {
    try {
      const info = await api('GET', '/info');
      state.info = info;
      const search = info && info.search;
      if (search && Array.isArray(search.modes) && search.modes.length) {
        state.modes = search.modes.map(String);
        state.defaultMode = search.default_mode || state.modes[0];
      } else {
        state.modes = null;
      }
      renderModes();
      renderCorpus();
      return true;
    } catch (err) {
      if (err instanceof ApiError && err.status === 503) {
        notify('The server is still loading its model and index; the page will be ready in a moment.', 'info');
        await new Promise((r) => setTimeout(r, 1000));
        const ok = await loadInfo();
        if (ok) notify('');
        return ok;
      }
      notifyError(err);
      return false;
    }
  }

  async function loadCollections() {
    try {
      const body = await api('GET', '/collections');
      const list = body && Array.isArray(body.collections) ? body.collections : null;
      state.collections = list && list.length ? list : null;
    } catch (err) {
      state.collections = null; // 404: a server without collections
      if (err instanceof ApiError && err.status === 401) throw err;
    }
    renderCollections();
  }

  function renderModes() {
    const field = $('mode-field');
    const select = $('mode');
    if (!state.modes) {
      field.hidden = true;
      select.replaceChildren();
      return;
    }
    const wanted = new URLSearchParams(location.search).get('mode') || select.value || state.defaultMode;
    select.replaceChildren(...state.modes.map((m) => el('option', { value: m }, m)));
    select.value = state.modes.includes(wanted) ? wanted : state.defaultMode;
    field.hidden = false;
  }

  function renderCollections() {
    const field = $('collection-field');
    const select = $('collection');
    if (!state.collections) {
      field.hidden = true;
      select.replaceChildren();
      return;
    }
    const wanted = currentCollection();
    select.replaceChildren(...state.collections.map((c) => el('option', { value: c.name },
      `${c.name} (${plural(Number(c.documents) || 0, 'document')})`)));
    select.value = state.collections.some((c) => c.name === wanted) ? wanted : 'default';
    field.hidden = false;
    renderCorpus();
  }

  function currentCollection() {
    if (!state.collections) return 'default';
    return new URLSearchParams(location.search).get('c') || 'default';
  }

  function renderCorpus() {
    const out = $('corpus');
    let docs;
    let chunks;
    const c = state.collections && state.collections.find((x) => x.name === currentCollection());
    if (c) {
      docs = Number(c.documents) || 0;
      chunks = Number(c.chunks) || 0;
    } else if (state.info) {
      docs = state.info.documents;
      chunks = state.info.chunks;
    } else {
      out.textContent = '';
      return;
    }
    out.textContent = `${plural(docs, 'document')} · ${plural(chunks, 'passage')}`;
    if (state.info && state.info.model) out.title = `Model: ${state.info.model}`;
  }

  async function refreshCounts() {
    await Promise.allSettled([loadInfo(), state.collections ? loadCollections() : null]);
  }

  // ---------------------------------------------------------------------------------------
  // Navigation: the URL says what is shown (/?q=..., /?view=documents, /?doc=...).

  function urlWith(params) {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') p.set(k, v);
    const c = currentCollection();
    if (c !== 'default' && !('c' in params)) p.set('c', c);
    const s = p.toString();
    return s ? `/?${s}` : '/';
  }

  function navigate(url, { replace = false } = {}) {
    if (url !== location.pathname + location.search) {
      history[replace ? 'replaceState' : 'pushState'](null, '', url);
    }
    route();
  }

  function showView(name) {
    document.body.dataset.view = name;
    for (const v of ['search', 'documents', 'document']) $(`view-${v}`).hidden = v !== name;
    for (const a of document.querySelectorAll('.tabs a')) {
      const current = a.dataset.view === (name === 'document' ? 'documents' : name);
      if (current) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
  }

  function route({ initial = false } = {}) {
    const p = new URLSearchParams(location.search);
    state.viewSeq += 1;
    if (p.has('doc')) {
      showView('document');
      openDocument(p.get('doc'), { passage: p.get('passage'), q: p.get('q') });
    } else if (p.get('view') === 'documents') {
      showView('documents');
      document.title = 'Documents · semdex';
      listDocuments(Math.max(0, Number.parseInt(p.get('offset'), 10) || 0));
      if (!initial) $('documents-heading').focus();
    } else {
      showView('search');
      const q = p.get('q') || '';
      $('q').value = q;
      const k = p.get('k');
      if (k && [...$('k').options].some((o) => o.value === k)) $('k').value = k;
      else $('k').value = '5';
      $('group').checked = p.get('group') === '1';
      if (state.modes) $('mode').value = state.modes.includes(p.get('mode')) ? p.get('mode') : state.defaultMode;
      if (q.trim()) search(q);
      else clearResults();
      document.title = q ? `${q} · semdex` : 'semdex';
      if (initial || !q) $('q').focus();
    }
  }

  document.addEventListener('click', (e) => {
    const a = e.target.closest('a[data-nav]');
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    state.keyDeclined = false;
    navigate(a.getAttribute('href'));
  });

  window.addEventListener('popstate', () => route());

  // ---------------------------------------------------------------------------------------
  // Search.

  function clearResults() {
    state.searchSeq += 1;
    $('results').replaceChildren();
    $('search-status').textContent = '';
    $('search-empty').hidden = false;
  }

  function searchParams() {
    const params = { q: $('q').value.trim(), k: $('k').value };
    if (state.modes && $('mode').value && $('mode').value !== state.defaultMode) params.mode = $('mode').value;
    if (params.k === '5') delete params.k;
    if ($('group').checked) params.group = '1';
    return params;
  }

  $('search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    state.keyDeclined = false;
    const params = searchParams();
    if (!params.q) {
      $('search-status').textContent = 'Type a question first.';
      $('q').focus();
      return;
    }
    const url = urlWith(params);
    if (url === location.pathname + location.search) search(params.q); // same question again
    else navigate(url);
  });

  for (const id of ['k', 'mode', 'group']) {
    $(id).addEventListener('change', () => {
      const params = searchParams();
      if (params.q) navigate(urlWith(params), { replace: true });
    });
  }

  $('collection').addEventListener('change', () => {
    const c = $('collection').value;
    const p = new URLSearchParams(location.search);
    if (c === 'default') p.delete('c');
    else p.set('c', c);
    p.delete('offset');
    const s = p.toString();
    renderCorpus();
    navigate(s ? `/?${s}` : '/', { replace: true });
  });

  async function search(q) {
    const seq = ++state.searchSeq;
    const status = $('search-status');
    const list = $('results');
    const k = $('k').value;
    // Highlights mark the sentences that answer; grouping keeps one passage per document.
    const query = new URLSearchParams({ q, k, highlights: 'true' });
    if (state.modes && $('mode').value) query.set('mode', $('mode').value);
    if ($('group').checked) query.set('group_by', 'doc_id');
    $('search-empty').hidden = true;
    status.textContent = 'Searching…';
    list.setAttribute('aria-busy', 'true');
    try {
      const body = await api('GET', `${collectionPrefix()}/search?${query}`);
      if (seq !== state.searchSeq) return;
      notify('');
      renderResults(body, q);
      state.lastSearchUrl = location.pathname + location.search;
      // The Search tab brings these results back after a look at the documents.
      document.querySelector('.tabs a[data-view="search"]').setAttribute('href', state.lastSearchUrl);
    } catch (err) {
      if (seq !== state.searchSeq) return;
      list.replaceChildren();
      status.textContent = err instanceof ApiError && err.status !== 0 ? 'The search failed; see the message above.' : '';
      notifyError(err);
    } finally {
      if (seq === state.searchSeq) list.removeAttribute('aria-busy');
    }
  }

  function renderResults(body, q) {
    const results = Array.isArray(body && body.results) ? body.results : [];
    const status = $('search-status');
    const list = $('results');
    const took = typeof body.took_ms === 'number' ? ` in ${Math.round(body.took_ms)} ms` : '';
    status.textContent = results.length
      ? `${plural(results.length, 'passage')} found${took}, best first.`
      : 'No passages found. Add some documents, or ask differently.';
    const pattern = termPattern(q);
    // Cosine similarities fill the bar absolutely; fused (hybrid) scores relative to the best.
    const fused = results.some((r) => r.scores && typeof r.scores === 'object');
    const top = Math.max(...results.map((r) => Number(r.score) || 0), 1e-9);
    const items = results.map((hit, i) => renderHit(hit, i, q, pattern, fused ? top : 1));
    const groups = Array.isArray(body.groups) ? body.groups : null;
    if (groups) {
      // One entry per group (a document, or a metadata value), its passages inside it.
      list.replaceChildren(...groups.map((g, i) => {
        const members = (Array.isArray(g.results) ? g.results : []).map((r) => items[r]).filter(Boolean);
        const key = typeof g.key === 'string' ? g.key : JSON.stringify(g.key);
        return el('li', { className: 'group' },
          el('p', { className: 'group-head' }, el('span', { className: 'visually-hidden' }, `Group ${i + 1}: `), key,
            members.length > 1 ? el('span', { className: 'where' }, ` · ${plural(members.length, 'passage')}`) : null),
          el('ol', { className: 'results nested' }, ...members));
      }));
      status.textContent = results.length
        ? `${plural(groups.length, 'document')} found${took}, best first.`
        : status.textContent;
    } else {
      list.replaceChildren(...items);
    }
    // Context from the documents, as they arrive.
    const byDoc = new Map();
    results.forEach((hit, i) => {
      if (!byDoc.has(hit.doc_id)) byDoc.set(hit.doc_id, []);
      byDoc.get(hit.doc_id).push(i);
    });
    const seq = state.searchSeq;
    for (const [docId, indexes] of byDoc) {
      addContext(docId, indexes.map((i) => [results[i], items[i]]), pattern, seq);
    }
  }

  /** The highlights of `hit` (byte spans of its document) that lie within `start..end`. */
  function highlightsIn(hit, start, end) {
    return (Array.isArray(hit.highlights) ? hit.highlights : [])
      .filter((h) => Number.isInteger(h.start) && Number.isInteger(h.end) && h.start >= start && h.end <= end && h.start < h.end)
      .sort((a, b) => a.start - b.start);
  }

  /**
   * Appends `text` (the document's bytes `start..` as a string) to `parent`: the highlighted
   * sentences in <mark class="hl">, the query's words marked inside and outside them.
   */
  function appendPassage(parent, text, start, highlights, pattern) {
    const bytes = utf8.encode(text);
    let at = 0;
    const pieces = [];
    for (const h of highlights) {
      const s = h.start - start;
      const e = h.end - start;
      if (s < at || e > bytes.length) continue;
      if (s > at) pieces.push([decodeBytes(bytes, at, s), false]);
      pieces.push([decodeBytes(bytes, s, e), true]);
      at = e;
    }
    if (at < bytes.length) pieces.push([decodeBytes(bytes, at, bytes.length), false]);
    pieces.forEach(([piece, marked], i) => {
      let shown = piece.replace(/[ \t]*\n\s*/g, '\n');
      if (i === 0) shown = shown.trimStart();
      if (i === pieces.length - 1) shown = shown.trimEnd();
      if (marked) {
        const mark = el('mark', { className: 'hl', title: 'The sentence that best answers the question' });
        appendMarked(mark, shown, pattern);
        parent.append(mark);
      } else {
        appendMarked(parent, shown, pattern);
      }
    });
  }

  function renderHit(hit, i, q, pattern, scale) {
    const score = Number(hit.score);
    const docHref = urlWith({ doc: hit.doc_id, passage: hit.chunk_index, q });
    const meter = el('span', { className: 'meter', 'aria-hidden': 'true' }, el('span', { className: 'meter-fill' }));
    meter.firstChild.style.width = `${Math.max(0, Math.min(1, score / scale)) * 100}%`;
    const parts = [];
    if (hit.scores && typeof hit.scores === 'object') {
      for (const name of ['dense', 'lexical', 'rerank']) {
        const v = hit.scores[name];
        if (typeof v === 'number') parts.push(el('span', { className: 'part' }, `${name} `, el('b', {}, formatScore(v))));
      }
    }
    const title = typeof hit.title === 'string' ? hit.title
      : hit.metadata && typeof hit.metadata.title === 'string' ? hit.metadata.title : null;
    const where = [title ? hit.doc_id : null, `passage ${hit.chunk_index + 1}`, citeText(hit)].filter(Boolean).join(' · ');
    const passage = el('span', { className: 'passage' });
    appendPassage(passage, hit.text, hit.start, highlightsIn(hit, hit.start, hit.end), pattern);
    const chips = Object.entries(hit.metadata || {}).filter(([k]) => k !== 'title').slice(0, 4)
      .map(([k, v]) => el('span', { className: 'chip' }, `${k}: ${metadataText(v)}`));
    return el('li', { className: 'hit', dataset: { chunk: hit.chunk_id } },
      el('div', { className: 'hit-head' },
        el('span', { className: 'rank', 'aria-hidden': 'true' }, String(i + 1)),
        el('div', { className: 'hit-source' },
          el('a', { href: docHref, 'data-nav': true, className: 'doc-link' }, title || hit.doc_id),
          el('span', { className: 'where' }, where)),
        el('div', { className: 'score', title: scale !== 1 ? 'Score (the bar is relative to the best result)' : 'Cosine similarity to the question' },
          el('span', { className: 'visually-hidden' }, 'score '),
          el('span', { className: 'score-value' }, formatScore(score)), meter)),
      parts.length ? el('p', { className: 'parts' }, el('span', { className: 'visually-hidden' }, 'Score parts: '), ...interleave(parts, ' · ')) : null,
      el('blockquote', { className: 'excerpt' }, el('span', { className: 'ctx before' }), passage, el('span', { className: 'ctx after' })),
      chips.length ? el('p', { className: 'chips' }, ...chips) : null);
  }

  // Where a passage lies in its file, as the server found it: its section and its PDF pages.
  function citeText(hit) {
    const parts = [];
    if (typeof hit.section === 'string' && hit.section) parts.push(hit.section);
    const p = hit.pages;
    if (p && typeof p.first === 'number') {
      parts.push(p.last > p.first ? `pages ${p.first}–${p.last}` : `page ${p.first}`);
    }
    return parts.join(' · ');
  }

  function interleave(items, separator) {
    return items.flatMap((x, i) => (i ? [separator, x] : [x]));
  }

  async function addContext(docId, hits, pattern, seq) {
    let doc;
    try {
      doc = await loadDocument(docId);
      // The document may have changed since it was cached: check the offsets still fit.
      const [first] = hits[0];
      if (decodeBytes(doc.bytes, first.start, first.end) !== first.text) {
        doc = await loadDocument(docId, { fresh: true });
      }
    } catch (_) {
      return; // the passage alone is still shown
    }
    if (seq !== state.searchSeq) return;
    for (const [hit, item] of hits) {
      if (!item || decodeBytes(doc.bytes, hit.start, hit.end) !== hit.text) continue;
      const ctx = context(doc, hit.start, hit.end);
      const [before, passage, after] = item.querySelector('.excerpt').children;
      before.replaceChildren();
      after.replaceChildren();
      appendMarked(before, ctx.before, pattern);
      appendMarked(after, ctx.after, pattern);
      passage.replaceChildren();
      appendPassage(passage, hit.text, hit.start, highlightsIn(hit, hit.start, hit.end), pattern);
    }
  }

  // ---------------------------------------------------------------------------------------
  // The document list.

  async function listDocuments(offset) {
    const seq = state.viewSeq;
    const status = $('documents-status');
    const list = $('documents');
    status.textContent = 'Loading…';
    list.setAttribute('aria-busy', 'true');
    try {
      const body = await api('GET', `${collectionPrefix()}/documents?limit=${PAGE_SIZE}&offset=${offset}`);
      if (seq !== state.viewSeq) return;
      state.listOffset = offset;
      const docs = body.documents || [];
      const total = Number(body.total) || 0;
      if (!docs.length && offset > 0 && total > 0) {
        navigate(urlWith({ view: 'documents', offset: Math.max(0, total - PAGE_SIZE) }), { replace: true });
        return;
      }
      status.textContent = total
        ? `${plural(total, 'document')}${total > docs.length ? `, showing ${offset + 1}–${offset + docs.length}` : ''}`
        : 'No documents yet. Add one with the form.';
      list.replaceChildren(...docs.map(renderDocumentRow));
      const pager = $('pager');
      pager.hidden = total <= PAGE_SIZE;
      $('page-prev').disabled = offset === 0;
      $('page-next').disabled = offset + docs.length >= total;
      $('page-info').textContent = `${offset + 1}–${offset + docs.length} of ${total.toLocaleString()}`;
    } catch (err) {
      if (seq !== state.viewSeq) return;
      status.textContent = 'The documents could not be listed.';
      notifyError(err);
    } finally {
      list.removeAttribute('aria-busy');
    }
  }

  $('page-prev').addEventListener('click', () => navigate(urlWith({ view: 'documents', offset: Math.max(0, state.listOffset - PAGE_SIZE) || '' })));
  $('page-next').addEventListener('click', () => navigate(urlWith({ view: 'documents', offset: state.listOffset + PAGE_SIZE })));

  function renderDocumentRow(d) {
    const facts = [plural(d.chunks, 'passage'), formatBytes(d.bytes), `added ${formatDate(d.ingested_at)}`];
    const chips = Object.entries(d.metadata || {}).slice(0, 6)
      .map(([k, v]) => el('span', { className: 'chip' }, `${k}: ${metadataText(v)}`));
    return el('li', { className: 'doc-row' },
      el('div', { className: 'doc-main' },
        el('a', { href: urlWith({ doc: d.id }), 'data-nav': true, className: 'doc-link' }, d.id),
        el('p', { className: 'facts' }, facts.join(' · ')),
        chips.length ? el('p', { className: 'chips' }, ...chips) : null),
      el('button', {
        type: 'button', className: 'danger subtle', 'aria-label': `Delete ${d.id}`,
        onclick: () => deleteDocument(d.id, d.chunks),
      }, 'Delete'));
  }

  // ---------------------------------------------------------------------------------------
  // Deleting.

  function confirmDelete(id, chunks) {
    const dialog = $('confirm-dialog');
    $('confirm-text').textContent = `“${id}” and its ${plural(chunks, 'passage')} will be removed from the index `
      + 'at once. This cannot be undone.';
    return new Promise((resolve) => {
      dialog.addEventListener('close', () => resolve(dialog.returnValue === 'delete'), { once: true });
      dialog.returnValue = 'cancel';
      dialog.showModal();
      $('confirm-cancel').focus();
    });
  }

  async function deleteDocument(id, chunks) {
    if (!(await confirmDelete(id, chunks))) return;
    try {
      const r = await api('DELETE', `${collectionPrefix()}/documents/${encodeURIComponent(id)}`);
      forgetDocument(id);
      notify(`Deleted “${id}” (${plural(r.deleted_chunks, 'passage')}).`, 'success');
      refreshCounts();
      if (!$('view-document').hidden) navigate(urlWith({ view: 'documents' }));
      else listDocuments(state.listOffset);
    } catch (err) {
      notifyError(err);
    }
  }

  // ---------------------------------------------------------------------------------------
  // One document, with its passages marked.

  async function openDocument(id, { passage, q }) {
    const seq = state.viewSeq;
    const heading = $('document-heading');
    const text = $('document-text');
    const status = $('document-status');
    heading.textContent = id;
    document.title = `${id} · semdex`;
    $('document-facts').textContent = '';
    $('document-metadata').replaceChildren();
    text.replaceChildren();
    status.textContent = 'Loading…';
    const back = $('document-back');
    if (state.lastSearchUrl && q) {
      back.textContent = '← Back to results';
      back.setAttribute('href', state.lastSearchUrl);
    } else {
      back.textContent = '← All documents';
      back.setAttribute('href', urlWith({ view: 'documents' }));
    }
    $('document-delete').onclick = null;
    try {
      const [doc, spans] = await Promise.all([
        loadDocument(id, { fresh: true }),
        api('GET', `${collectionPrefix()}/documents/${encodeURIComponent(id)}/chunks`)
          .catch((err) => (err instanceof ApiError && err.status === 404 ? null : Promise.reject(err))),
      ]);
      if (seq !== state.viewSeq) return;
      const chunks = spans && Array.isArray(spans.chunks) ? spans.chunks : [];
      const facts = [plural(doc.chunks, 'passage'), formatBytes(doc.bytes.length), `added ${formatDate(doc.ingested_at)}`];
      if (doc.source) facts.push(`from ${doc.source}`);
      $('document-facts').textContent = facts.join(' · ');
      const meta = Object.entries(doc.metadata || {});
      $('document-metadata').replaceChildren(...meta.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, metadataText(v))]));
      $('document-delete').onclick = () => deleteDocument(doc.id, doc.chunks);
      const hitIndex = passage === null || passage === undefined || passage === '' ? null : Number(passage);
      renderDocumentText(text, doc.bytes, chunks, hitIndex, termPattern(q));
      status.textContent = chunks.length
        ? `Passages are shaded in turn${hitIndex !== null ? '; the one found is outlined' : ''}.`
        : '';
      const target = text.querySelector('.block.found');
      if (target) {
        target.scrollIntoView({ block: 'center' });
        target.focus({ preventScroll: true });
      } else {
        heading.focus();
      }
    } catch (err) {
      if (seq !== state.viewSeq) return;
      status.textContent = err instanceof ApiError && err.status === 404
        ? `There is no document “${id}”. It may have been deleted.`
        : 'The document could not be loaded.';
      if (!(err instanceof ApiError && err.status === 404)) notifyError(err);
      heading.focus();
    }
  }

  /**
   * Renders a document as blocks, one per passage (overlapping parts stay with the earlier
   * passage, marked as shared). Text outside every passage is whitespace, or its own block.
   */
  function renderDocumentText(out, bytes, chunks, hitIndex, pattern) {
    const spans = chunks
      .map((c) => ({ index: Number(c.index), start: Number(c.start), end: Number(c.end) }))
      .filter((c) => c.start >= 0 && c.end <= bytes.length && c.start < c.end)
      .sort((a, b) => a.start - b.start || a.index - b.index);
    if (!spans.length) {
      const body = el('div', { className: 'block-text' });
      appendMarked(body, fromUtf8.decode(bytes), pattern);
      out.replaceChildren(el('div', { className: 'block plain' }, body));
      return;
    }
    const points = new Set([0, bytes.length]);
    for (const s of spans) {
      points.add(charBoundary(bytes, s.start));
      points.add(charBoundary(bytes, s.end));
    }
    const cuts = [...points].sort((a, b) => a - b);
    const blocks = [];
    let current = null;
    let next = 0; // first span not yet active
    let active = [];
    for (let i = 0; i + 1 < cuts.length; i += 1) {
      const a = cuts[i];
      const b = cuts[i + 1];
      while (next < spans.length && spans[next].start <= a) active.push(spans[next++]);
      active = active.filter((s) => s.end > a);
      const segment = fromUtf8.decode(bytes.subarray(a, b));
      if (!active.length) {
        if (!segment.trim()) continue;
        current = null;
        blocks.push({ owner: null, parts: [{ text: segment, shared: false, hit: false }] });
        continue;
      }
      const owner = active.reduce((m, s) => (s.index < m.index ? s : m));
      if (!current || current.owner !== owner) {
        current = { owner, parts: [] };
        blocks.push(current);
      }
      current.parts.push({
        text: segment,
        shared: active.length > 1,
        hit: hitIndex !== null && active.some((s) => s.index === hitIndex),
      });
    }
    const nodes = blocks.map((blk) => {
      const isHit = blk.owner && blk.owner.index === hitIndex;
      const n = blk.owner ? blk.owner.index + 1 : null;
      const block = el('div', {
        className: `block${blk.owner ? (blk.owner.index % 2 ? ' odd' : ' even') : ' plain'}${isHit ? ' found' : ''}`,
        tabindex: isHit ? '-1' : null,
        'aria-label': isHit ? `Passage ${n}, the one found` : null,
        role: isHit ? 'region' : null,
      });
      if (n) block.append(el('span', { className: 'block-no', 'aria-hidden': 'true', title: `Passage ${n}` }, String(n)));
      const body = el('div', { className: 'block-text' });
      blk.parts.forEach((part, i) => {
        let t = part.text;
        if (i === 0) t = t.replace(/^\s+/, '');
        if (i === blk.parts.length - 1) t = t.replace(/\s+$/, '');
        if (!t) return;
        if (part.shared || (part.hit && !isHit)) {
          const span = el('span', { className: `${part.shared ? 'shared' : ''}${part.hit ? ' in-hit' : ''}`.trim(), title: part.shared ? 'Shared with the next passage' : null });
          appendMarked(span, t, pattern);
          body.append(span);
        } else {
          appendMarked(body, t, pattern);
        }
      });
      block.append(body);
      return block;
    });
    out.replaceChildren(...nodes);
  }

  // ---------------------------------------------------------------------------------------
  // Adding documents: pasted text and files, one request each, with progress.

  function readMetadata() {
    const field = $('add-meta');
    const error = $('add-meta-error');
    const raw = field.value.trim();
    error.textContent = '';
    field.removeAttribute('aria-invalid');
    if (!raw) return {};
    let value;
    try {
      value = JSON.parse(raw);
    } catch (e) {
      const why = e && e.message ? e.message.replace(/^JSON\.parse: /, '') : 'not JSON';
      error.textContent = `Metadata is not valid JSON (${why}). Write an object, like {"topic": "news"}.`;
    }
    if (!error.textContent && (value === null || typeof value !== 'object' || Array.isArray(value))) {
      error.textContent = 'Metadata must be a JSON object, like {"topic": "news"}, not a list or a single value.';
    }
    if (error.textContent) {
      field.setAttribute('aria-invalid', 'true');
      field.focus();
      return null;
    }
    return value;
  }

  function progressRow(name) {
    const bar = el('progress', { max: '100', value: '0', 'aria-label': `Uploading ${name}` });
    const stateText = el('span', { className: 'progress-state' }, 'Waiting…');
    const row = el('li', { className: 'progress-row' }, el('span', { className: 'progress-name' }, name), bar, stateText);
    $('add-progress').append(row);
    return {
      upload(loaded, total, done) {
        if (done) {
          bar.removeAttribute('value'); // indeterminate: the server is embedding
          bar.setAttribute('aria-label', `Indexing ${name}`);
          stateText.textContent = 'Indexing…';
        } else if (total) {
          const pct = Math.round((loaded / total) * 100);
          bar.value = pct;
          stateText.textContent = `Uploading ${pct}%`;
        }
      },
      done(message, href) {
        bar.value = 100;
        bar.max = 100;
        row.classList.add('ok');
        stateText.replaceChildren(message);
        if (href) stateText.append(' ', el('a', { href, 'data-nav': true }, 'Open'));
      },
      fail(message) {
        bar.remove();
        row.classList.add('failed');
        stateText.textContent = message;
      },
      job(job) {
        // The server reads and indexes the file in the background: its progress, as it goes.
        bar.max = Math.max(1, job.documents_total);
        bar.value = job.documents_done;
        bar.setAttribute('aria-label', `Indexing ${name}`);
        stateText.textContent = job.state === 'queued' ? 'Queued…'
          : `Reading and indexing: ${plural(job.passages_done, 'passage')} so far…`;
      },
    };
  }

  /** Follows an upload job until it ends; its last state. */
  async function followJob(job, row) {
    for (;;) {
      row.job(job);
      if (!['queued', 'running'].includes(job.state)) return job;
      await new Promise((resolve) => setTimeout(resolve, 500));
      job = await api('GET', `/jobs/${encodeURIComponent(job.id)}`);
    }
  }

  const STATUS_WORDS = {
    created: 'Added',
    updated: 'Replaced',
    metadata_updated: 'Metadata updated',
    unchanged: 'Already there, unchanged',
  };

  $('add-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    state.keyDeclined = false;
    const metadata = readMetadata();
    if (metadata === null) return;
    const textField = $('add-text');
    const filesField = $('add-files');
    const id = $('add-id').value.trim();
    const text = textField.value;
    const files = [...filesField.files];
    if (!text.trim() && !files.length) {
      $('add-meta-error').textContent = '';
      notify('Paste a text or choose at least one file to add.', 'error');
      textField.focus();
      return;
    }
    const jobs = [];
    if (text.trim()) jobs.push({ name: id || 'Pasted text', read: async () => text, id: id || undefined });
    for (const file of files) {
      const oneFileNamed = !text.trim() && files.length === 1 && id;
      jobs.push({ name: file.name, id: oneFileNamed ? id : file.name, file });
    }
    const submit = $('add-submit');
    submit.disabled = true;
    $('add-progress').replaceChildren();
    notify('');
    let added = 0;
    let failed = 0;
    // Every file is listed at once, waiting its turn: one request each, in order.
    const rows = jobs.map((job) => progressRow(job.name));
    $('add-progress').scrollIntoView({ block: 'nearest' });
    for (const [i, job] of jobs.entries()) {
      const row = rows[i];
      try {
        let r;
        if (job.file) {
          // The file itself: the server reads PDF, HTML, Markdown, Word and text. A large one
          // becomes a job (202) whose progress the row follows.
          const query = new URLSearchParams({ id: job.id });
          if (Object.keys(metadata).length) query.set('metadata', JSON.stringify(metadata));
          r = await api('POST', `${collectionPrefix()}/documents?${query}`, { file: job.file, onUpload: (...a) => row.upload(...a) });
          if (r.state) {
            const ended = await followJob(r, row);
            if (ended.state !== 'done' || ended.errors.length) {
              const why = ended.errors.length ? ended.errors[0].message : ended.message || ended.state;
              throw new Error(sentence(why));
            }
            r = { documents: ended.documents };
          }
        } else {
          const body = { text: await job.read(), metadata };
          if (job.id) body.id = job.id;
          r = await api('POST', `${collectionPrefix()}/documents`, { body, onUpload: (...a) => row.upload(...a) });
        }
        const d = r.documents && r.documents[0];
        forgetDocument(d.id);
        row.done(`${STATUS_WORDS[d.status] || d.status} as “${d.id}”, ${plural(d.chunks, 'passage')}.`, urlWith({ doc: d.id }));
        added += 1;
        refreshCounts();
        listDocuments(state.listOffset);
      } catch (err) {
        failed += 1;
        row.fail(err instanceof ApiError ? describe(err) : `Not added: ${String(err.message || err).replace(/\.$/, '')}.`);
      }
    }
    submit.disabled = false;
    if (added) {
      textField.value = '';
      filesField.value = '';
      $('add-id').value = '';
    }
    if (failed) notify(`${plural(failed, 'document')} could not be added; see the list under the form.`, 'error');
  });

  // Files dropped anywhere on the form are added as if chosen with the picker.
  const addForm = $('add-form');
  const carriesFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes('Files');
  addForm.addEventListener('dragover', (e) => {
    if (!carriesFiles(e)) return;
    e.preventDefault();
    addForm.classList.add('dropping');
  });
  addForm.addEventListener('dragleave', (e) => {
    if (!addForm.contains(e.relatedTarget)) addForm.classList.remove('dropping');
  });
  addForm.addEventListener('drop', (e) => {
    addForm.classList.remove('dropping');
    if (!carriesFiles(e) || !e.dataTransfer.files.length) return;
    e.preventDefault();
    $('add-files').files = e.dataTransfer.files;
    notify(`${plural(e.dataTransfer.files.length, 'file')} ready: press Add.`);
  });

  $('add-meta').addEventListener('input', () => {
    if ($('add-meta').getAttribute('aria-invalid')) {
      $('add-meta').removeAttribute('aria-invalid');
      $('add-meta-error').textContent = '';
    }
  });

  // ---------------------------------------------------------------------------------------
  // Start.

  /** Learns what the server offers, then shows what the URL asks for. Failures are reported
   * in the notice and the page stays usable: every action reports its own errors. */
  async function boot() {
    await loadInfo();
    try {
      await loadCollections();
    } catch (_) { /* a missing key is reported by loadInfo already */ }
    route({ initial: true });
  }

  // The view is visible (and the box focused) before the first answer arrives.
  {
    const p = new URLSearchParams(location.search);
    if (!p.has('doc') && p.get('view') !== 'documents') {
      showView('search');
      $('q').value = p.get('q') || '';
      $('q').focus();
    } else {
      showView(p.has('doc') ? 'document' : 'documents');
    }
  }
  boot();
})();
