// Runs recsdk.js in Node against a minimal DOM and prints what it did, as JSON.
//
// Not a browser: the DOM here knows only what the script uses (attribute selectors,
// closest, textContent, ...), and innerHTML, outerHTML, insertAdjacentHTML and
// document.write throw, so any use of them fails the scenario. IntersectionObserver,
// timers, storage, fetch and sendBeacon are fakes the scenarios drive by hand.
// Usage: node recsdk_js_harness.js path/to/recsdk.js  (prints {scenario: result})
'use strict';
const fs = require('fs');
const vm = require('vm');

function forbidden(name) {
  return function () { throw new Error(name + ' used'); };
}

class Element {
  constructor(tag) {
    this.tagName = tag.toUpperCase();
    this.attributes = new Map();
    this.children = [];
    this.parentNode = null;
    this.ownText = '';
    this.hidden = false;
    this.className = '';
  }
  setAttribute(name, value) { this.attributes.set(name, String(value)); }
  getAttribute(name) { return this.attributes.has(name) ? this.attributes.get(name) : null; }
  hasAttribute(name) { return this.attributes.has(name); }
  appendChild(child) { child.parentNode = this; this.children.push(child); return child; }
  insertBefore(child, ref) {
    child.parentNode = this;
    const at = ref ? this.children.indexOf(ref) : -1;
    if (at < 0) this.children.push(child); else this.children.splice(at, 0, child);
    return child;
  }
  removeChild(child) {
    this.children.splice(this.children.indexOf(child), 1);
    child.parentNode = null;
    return child;
  }
  get firstChild() { return this.children[0] || null; }
  get nextSibling() {
    if (!this.parentNode) return null;
    const siblings = this.parentNode.children;
    return siblings[siblings.indexOf(this) + 1] || null;
  }
  set textContent(value) { this.children = []; this.ownText = String(value); }
  get textContent() { return this.ownText + this.children.map((c) => c.textContent).join(''); }
  set innerHTML(value) { throw new Error('innerHTML used'); }
  set outerHTML(value) { throw new Error('outerHTML used'); }
  matches(selector) {
    const m = /^\[([\w-]+)(?:="([^"]*)")?\]$/.exec(selector);
    if (!m) throw new Error('selector not supported by the harness: ' + selector);
    return this.hasAttribute(m[1]) && (m[2] === undefined || this.getAttribute(m[1]) === m[2]);
  }
  closest(selector) {
    for (let node = this; node instanceof Element; node = node.parentNode) {
      if (node.matches(selector)) return node;
    }
    return null;
  }
  contains(other) {
    for (let node = other; node; node = node.parentNode) if (node === this) return true;
    return false;
  }
  querySelectorAll(selector) {
    const out = [];
    const walk = (node) => node.children.forEach((c) => {
      if (c.matches(selector)) out.push(c);
      walk(c);
    });
    walk(this);
    return out;
  }
}
Element.prototype.insertAdjacentHTML = forbidden('insertAdjacentHTML');

function dump(node) {
  const out = { tag: node.tagName, attributes: Object.fromEntries(node.attributes),
                text: node.ownText, hidden: node.hidden, className: node.className };
  for (const prop of ['href', 'src', 'alt']) if (node[prop] !== undefined) out[prop] = node[prop];
  out.children = node.children.map(dump);
  return out;
}

function world(scriptAttributes) {
  const listeners = {};
  const on = (target) => (type, fn) => { (listeners[target + type] ||= []).push(fn); };
  const fire = (target, type, event) => (listeners[target + type] || []).forEach((fn) => fn(event));
  let clock = 0;
  let timers = [];
  const beacons = [];
  const fetches = [];
  const observed = new Set();
  let observerCallback = null;
  const storage = () => {
    const map = new Map();
    return { getItem: (k) => (map.has(k) ? map.get(k) : null),
             setItem: (k, v) => map.set(k, String(v)), removeItem: (k) => map.delete(k) };
  };
  const body = new Element('body');
  const script = new Element('script');
  Object.entries(scriptAttributes).forEach(([k, v]) => script.setAttribute(k, v));
  script.src = scriptAttributes.src;
  body.appendChild(script);
  const document = Object.assign(new Element('#document'), {
    readyState: 'complete', visibilityState: 'visible', baseURI: 'https://shop.example/p/1',
    currentScript: script, addEventListener: on('document:'),
    createElement: (tag) => new Element(tag), write: forbidden('document.write'),
    writeln: forbidden('document.writeln')
  });
  document.matches = () => false;
  document.appendChild(body);
  const sandbox = {
    document, console, URL, URLSearchParams, JSON, Promise, Intl, Number, String,
    location: { origin: 'https://shop.example', href: 'https://shop.example/p/1' },
    navigator: { sendBeacon: (url, data) => { beacons.push({ url, events: JSON.parse(data) }); return true; } },
    sessionStorage: storage(), localStorage: storage(),
    setTimeout: (fn, ms) => { const id = timers.length + 1; timers.push({ id, due: clock + ms, fn }); return id; },
    clearTimeout: (id) => { timers = timers.filter((t) => t.id !== id); },
    IntersectionObserver: class {
      constructor(callback) { observerCallback = callback; }
      observe(el) { observed.add(el); }
      unobserve(el) { observed.delete(el); }
    },
    fetch: (url, init) => {
      fetches.push({ url, credentials: init && init.credentials });
      const answer = sandbox.nextAnswer;
      return Promise.resolve({ ok: answer.status === 200, status: answer.status,
                               json: () => Promise.resolve(answer.body) });
    },
    addEventListener: on('window:')
  };
  sandbox.window = sandbox;
  vm.createContext(sandbox);
  vm.runInContext(fs.readFileSync(process.argv[2], 'utf8'), sandbox);
  const advance = (ms) => {
    clock += ms;
    for (;;) {
      const due = timers.filter((t) => t.due <= clock).sort((a, b) => a.due - b.due)[0];
      if (!due) break;
      timers = timers.filter((t) => t !== due);
      due.fn();
    }
  };
  const list = (token, ids) => {
    const root = document.createElement('div');
    root.setAttribute('data-recsdk-token', token);
    ids.forEach((id, i) => {
      const li = document.createElement('li');
      li.setAttribute('data-recsdk-item-id', id);
      li.setAttribute('data-recsdk-position', String(i + 1));
      const link = document.createElement('a');
      li.appendChild(link);
      root.appendChild(li);
    });
    body.appendChild(root);
    return root;
  };
  const seen = (el, ratio) => observerCallback([{ target: el, isIntersecting: ratio > 0,
    intersectionRatio: ratio, rootBounds: { height: 800 }, intersectionRect: { height: 100 * ratio } }]);
  return { sandbox, document, body, beacons, fetches, observed, advance, list, seen, fire,
           recsdk: sandbox.recsdk };
}

const HOSTILE = '<img src=x onerror="alert(1)"><script>alert(2)</script>&amp;"\'';
const results = {};
const pending = [];

results.render = (() => {
  const w = world({ src: 'https://shop.example/api/v1/static/recsdk.js' });
  const box = w.document.createElement('div');
  w.recsdk.render(box, { token: 'T', request_id: 'R<', placement: 'home', items: [
    { item_id: '<b>x</b>', position: 1, title: HOSTILE, price: 9.5, original_price: 12,
      image_url: 'javascript:alert(1)', url: 'javascript:alert(2)' },
    { item_id: 'y z', position: 2, title: null, price: null, image_url: '/img/y.png',
      url: null },
    { item_id: 'w', position: 3, title: 'W', price: 3, image_url: 'data:image/png;base64,AA',
      url: 'https://shop.example/p/w' }
  ] }, { itemUrl: '/p/{id}', title: HOSTILE, currency: 'EUR' });
  return dump(box);
})();

results.empty = (() => {
  const w = world({ src: 'https://shop.example/api/v1/static/recsdk.js' });
  const box = w.document.createElement('div');
  box.appendChild(w.document.createElement('p'));
  w.recsdk.render(box, { token: 'T', items: [] });
  const after = dump(box);
  w.recsdk.render(box, { items: [{ item_id: 'a', position: 1 }] }); // no token
  return [after, dump(box)];
})();

results.click_then_track = (() => {
  const w = world({ src: 'https://shop.example/api/v1/static/recsdk.js' });
  const root = w.list('T1', ['a', 'b']);
  w.recsdk.scan(root);
  const link = root.children[1].children[0];
  w.fire('document:', 'click', { type: 'click', target: link, button: 0 });
  w.fire('document:', 'click', { type: 'click', target: link, button: 0 }); // once per page
  w.fire('document:', 'auxclick', { type: 'auxclick', target: link, button: 2 }); // right button
  const afterClick = w.beacons.slice();
  root.parentNode.removeChild(root); // the product page: the list is gone
  const tracked = w.recsdk.track('add_to_cart', 'b');
  const bought = w.recsdk.track('purchase', 'b', { value: 19.5 });
  const stray = w.recsdk.track('purchase', 'never-recommended');
  const unknown = w.recsdk.track('wishlist', 'b');
  return { afterClick, beacons: w.beacons, tracked, bought, stray, unknown,
           attribution: JSON.parse(w.sandbox.sessionStorage.getItem('recsdk.attribution')) };
})();

results.impressions = (() => {
  const w = world({ src: 'https://shop.example/api/v1/static/recsdk.js' });
  const root = w.list('T2', ['a', 'b', 'c']);
  w.recsdk.scan(w.document);
  const [a, b, c] = root.children;
  const observed = w.observed.size;
  w.seen(a, 0.6);
  w.seen(b, 0.6);
  w.advance(500);
  w.seen(b, 0.2); // scrolled away before a second
  w.seen(c, 0.4); // under half visible
  w.advance(600);
  const queuedOnly = w.beacons.length;
  w.document.visibilityState = 'hidden';
  w.fire('document:', 'visibilitychange', {});
  return { observed, queuedOnly, beacons: w.beacons, stillObserved: w.observed.size };
})();

results.timer_flush = (() => {
  const w = world({ src: 'https://shop.example/api/v1/static/recsdk.js' });
  const root = w.list('T3', ['a']);
  w.recsdk.scan(root);
  w.seen(root.children[0], 1);
  w.advance(1000);
  const before = w.beacons.length;
  w.advance(5000);
  return { before, after: w.beacons.length, url: w.beacons[0] && w.beacons[0].url };
})();

results.not_interested = (() => {
  const w = world({ src: 'https://shop.example/api/v1/static/recsdk.js' });
  const root = w.list('T4', ['a']);
  const button = w.document.createElement('button');
  button.setAttribute('data-recsdk-action', 'not_interested');
  root.children[0].appendChild(button);
  w.fire('document:', 'click', { type: 'click', target: button, button: 0 });
  return w.beacons;
})();

results.dismissed = (() => {
  const w = world({ src: 'https://shop.example/api/v1/static/recsdk.js' });
  const root = w.list('T5', ['a', 'b']);
  const button = w.document.createElement('button');
  button.setAttribute('data-recsdk-action', 'not_interested');
  root.children[0].appendChild(button);
  w.fire('document:', 'click', { type: 'click', target: button, button: 0 });
  return root.children.map((li) => li.hasAttribute('data-recsdk-dismissed'));
})();

results.redirect_links = (() => {
  const w = world({ src: 'https://shop.example/api/v1/static/recsdk.js' });
  const hrefs = [
    '/api/v1/r?token=T6&item=a&pos=1&to=%2Fp%2Fa%3Frid%3DR%26pos%3D1', // ours: straight
    'https://shop.example/api/v1/r?token=T6&item=b&pos=2&to=javascript%3Aalert(1)', // unsafe
    'https://elsewhere.example/api/v1/r?token=T6&item=c&pos=3&to=%2Fp%2Fc', // not ours
    '/p/d', // a plain link
    '/api/v1/r?token=T6&item=e&pos=5' // no target
  ];
  const root = w.list('T6', ['a', 'b', 'c', 'd', 'e']);
  root.children.forEach((li, i) => li.children[0].setAttribute('href', hrefs[i]));
  w.recsdk.scan(root);
  const links = root.children.map((li) => ({
    href: li.children[0].getAttribute('href'),
    redirect: li.children[0].getAttribute('data-recsdk-redirect') }));
  w.fire('document:', 'click', { type: 'click', target: root.children[0].children[0],
                                 button: 0 });
  return { links, beacons: w.beacons };
})();

pending.push((() => {
  const w = world({ src: 'https://recs.example/api/v1/static/recsdk.js',
                    'data-visitor': 'VISITOR-TOKEN' });
  const host = w.document.createElement('div');
  host.setAttribute('data-recsdk-widget', '');
  host.setAttribute('data-placement', 'home');
  host.setAttribute('data-k', '2');
  host.setAttribute('data-cart', 'c1, c2');
  w.body.appendChild(host);
  w.sandbox.nextAnswer = { status: 200, body: { token: 'WT', request_id: 'WR', placement: 'home',
    items: [{ item_id: 'a', position: 1, title: 'A', price: 1 }] } };
  return w.recsdk.mount(host).then(() => {
    w.fire('document:', 'click', { type: 'click', target: host.children[0].children[0], button: 0 });
    results.widget = { endpoint: w.recsdk.endpoint, fetches: w.fetches, tree: dump(host),
                       beacons: w.beacons, observed: w.observed.size };
  });
})());

pending.push((() => {
  const w = world({ src: 'https://shop.example/api/v1/static/recsdk.js' });
  const host = w.document.createElement('div');
  host.setAttribute('data-recsdk-widget', '');
  w.body.appendChild(host);
  w.sandbox.nextAnswer = { status: 503, body: { message: 'down' } };
  const warn = console.warn;
  console.warn = () => {};
  return w.recsdk.mount(host).then(() => {
    console.warn = warn;
    results.widget_failure = { fetches: w.fetches, tree: dump(host) };
  });
})());

Promise.all(pending).then(() => process.stdout.write(JSON.stringify(results)));
