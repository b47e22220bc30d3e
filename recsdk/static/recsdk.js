/*! recsdk.js: feedback capture and the embeddable widget of recsdk.
 *
 * One script tag: <script src="https://shop.example/api/v1/static/recsdk.js" defer></script>
 * - Every element with data-recsdk-token is a served list; each of its elements with
 *   data-recsdk-item-id (and data-recsdk-position, 1-based) is an item. An impression
 *   is logged once an item is at least half visible for a second, a click when it is
 *   clicked; a control inside it marked data-recsdk-action="not_interested" logs that
 *   (and marks the item data-recsdk-dismissed, for the page's style to hide it).
 * - An item's link through the logging redirect (<endpoint>/r?...&to=...), the href
 *   that logs a click when no script runs, is pointed straight at its target: the
 *   script logs the click itself, so a click is never counted twice.
 * - window.recsdk.track(type, itemId, {value}) logs add_to_cart, purchase,
 *   not_interested or rating, credited to the list the item was clicked in (kept in
 *   sessionStorage across pages) or shown in on this page.
 * - An element (or this script tag) with data-recsdk-widget fetches a list for the
 *   visitor and renders it (data-placement, data-k, data-item-id, data-title,
 *   data-item-url="/p/{id}", data-currency, data-image-base, data-visitor).
 * Events are batched and sent with navigator.sendBeacon (fetch keepalive otherwise)
 * every few seconds and when the page is hidden. Data is rendered as text, never HTML.
 * Plain ES2017, no dependencies. Docs: docs/feedback_capture.md.
 */
(function () {
  'use strict';
  if (window.recsdk && window.recsdk.version) return; // included twice

  var VERSION = '1';
  var TYPES = ['impression', 'click', 'add_to_cart', 'purchase', 'not_interested', 'rating'];
  var FLUSH_MS = 5000;
  var MAX_BATCH = 50; // the server takes up to api.beacon_max_events (100)
  var DWELL_MS = 1000;
  var ATTRIBUTION_KEY = 'recsdk.attribution';
  var VISITOR_KEY = 'recsdk.visitor';
  var MAX_ATTRIBUTED = 50;

  var script = document.currentScript;
  var endpoint = (function () {
    var given = script && script.getAttribute('data-endpoint');
    if (given) return given.replace(/\/+$/, '');
    if (script && script.src) return script.src.replace(/\/static\/recsdk\.js([?#].*)?$/, '');
    return '/api/v1';
  })();
  var sameOrigin = new URL(endpoint, document.baseURI).origin === location.origin;
  var redirect = (function () { // the logging redirect, as links name it
    try { return new URL(endpoint + '/r', document.baseURI); } catch (e) { return null; }
  })();
  var credentials = sameOrigin ? 'same-origin' : 'omit';

  var queue = [];
  var sent = new Set(); // events already queued on this page: one of each
  var timer = null;
  var attached = new WeakSet();
  var mounted = new WeakSet();
  var logged = new WeakSet();
  var dwell = new Map(); // item element -> pending impression timer
  var watched = new Set(); // item elements waiting for their impression

  function store(kind) {
    try { return window[kind]; } catch (e) { return null; } // blocked storage throws
  }

  function readJson(kind, key, fallback) {
    var s = store(kind);
    try { return (s && JSON.parse(s.getItem(key))) || fallback; } catch (e) { return fallback; }
  }

  function writeJson(kind, key, value) {
    var s = store(kind);
    try { if (s) s.setItem(key, JSON.stringify(value)); } catch (e) { /* full or blocked */ }
  }

  // A visitor token proves the visitor when the visitor cookie cannot (another site).
  function visitorToken() {
    var given = script && script.getAttribute('data-visitor');
    if (given) return given;
    return sameOrigin ? null : readJson('localStorage', VISITOR_KEY, null);
  }

  // ---- sending ------------------------------------------------------------------------

  function enqueue(event) {
    var key = [event.token, event.type, event.item_id, event.position].join('\u001f');
    if (sent.has(key)) return false;
    sent.add(key);
    queue.push(event);
    if (queue.length >= MAX_BATCH) flush();
    else if (!timer) timer = setTimeout(flush, FLUSH_MS);
    return true;
  }

  function flush() {
    if (timer) { clearTimeout(timer); timer = null; }
    while (queue.length) send(queue.splice(0, MAX_BATCH));
  }

  function send(events) {
    var visitor = visitorToken();
    var body = JSON.stringify(visitor ? { visitor: visitor, events: events } : events);
    var url = endpoint + '/beacon';
    var ok = false;
    if (navigator.sendBeacon) {
      try { ok = navigator.sendBeacon(url, body); } catch (e) { ok = false; }
    }
    if (!ok && window.fetch) {
      window.fetch(url, {
        method: 'POST', body: body, keepalive: true, credentials: credentials,
        mode: sameOrigin ? 'same-origin' : 'no-cors',
        headers: { 'Content-Type': 'text/plain;charset=UTF-8' }
      }).catch(function () { /* lost: feedback is best effort */ });
    }
  }

  // ---- lists and items ----------------------------------------------------------------

  function contextOf(item) {
    var root = item.closest('[data-recsdk-token]');
    if (!root) return null;
    var position = parseInt(item.getAttribute('data-recsdk-position'), 10);
    var id = item.getAttribute('data-recsdk-item-id');
    if (!(position >= 1) || !id) return null;
    return { token: root.getAttribute('data-recsdk-token'), item_id: id, position: position };
  }

  function emit(context, type, value) {
    var event = { token: context.token, type: type, item_id: context.item_id,
                  position: context.position };
    if (value !== undefined && value !== null) event.value = Number(value);
    return enqueue(event);
  }

  function remember(context) {
    var map = readJson('sessionStorage', ATTRIBUTION_KEY, {});
    map[context.item_id] = { token: context.token, position: context.position, at: Date.now() };
    var ids = Object.keys(map);
    if (ids.length > MAX_ATTRIBUTED) {
      ids.sort(function (a, b) { return map[a].at - map[b].at; });
      ids.slice(0, ids.length - MAX_ATTRIBUTED).forEach(function (id) { delete map[id]; });
    }
    writeJson('sessionStorage', ATTRIBUTION_KEY, map);
  }

  // ---- impressions: half visible for a second -----------------------------------------

  function visibleEnough(entry) {
    if (!entry.isIntersecting) return false;
    if (entry.intersectionRatio >= 0.5) return true;
    var view = entry.rootBounds; // an item taller than the viewport fills half of it
    return !!view && entry.intersectionRect.height >= 0.5 * view.height;
  }

  function cancel(item) {
    if (dwell.has(item)) { clearTimeout(dwell.get(item)); dwell.delete(item); }
  }

  function onIntersect(entries) {
    entries.forEach(function (entry) {
      var item = entry.target;
      if (visibleEnough(entry) && document.visibilityState !== 'hidden') {
        if (!dwell.has(item)) {
          dwell.set(item, setTimeout(function () { impression(item); }, DWELL_MS));
        }
      } else {
        cancel(item);
      }
    });
  }

  var observer = 'IntersectionObserver' in window
    ? new IntersectionObserver(onIntersect, { threshold: [0, 0.25, 0.5, 0.75, 1] }) : null;

  function impression(item) {
    dwell.delete(item);
    if (logged.has(item)) return;
    var context = contextOf(item);
    if (!context) return;
    logged.add(item);
    watched.delete(item);
    if (observer) observer.unobserve(item);
    emit(context, 'impression');
  }

  function onVisibility() {
    if (document.visibilityState === 'hidden') {
      dwell.forEach(function (id) { clearTimeout(id); }); // hidden time does not count
      dwell.clear();
      flush();
    } else if (observer) {
      watched.forEach(function (item) { observer.unobserve(item); observer.observe(item); });
    }
  }

  // ---- clicks -------------------------------------------------------------------------

  function onClick(event) {
    if (event.type === 'auxclick' && event.button !== 1) return; // middle button only
    var target = event.target && event.target.closest ? event.target : null;
    var item = target && target.closest('[data-recsdk-item-id]');
    var context = item && contextOf(item);
    if (!context) return;
    var action = target.closest('[data-recsdk-action]');
    if (action && item.contains(action)) {
      var type = action.getAttribute('data-recsdk-action');
      if (TYPES.indexOf(type) >= 0) emit(context, type, action.getAttribute('data-value'));
      if (type === 'not_interested') item.setAttribute('data-recsdk-dismissed', '');
    } else {
      remember(context); // the product page's add-to-cart is credited to this list
      emit(context, 'click');
    }
    flush(); // a click usually leaves the page
  }

  // ---- public: track, scan, render, mount ---------------------------------------------

  function onPage(itemId) {
    var items = document.querySelectorAll('[data-recsdk-item-id]');
    for (var i = 0; i < items.length; i++) {
      if (items[i].getAttribute('data-recsdk-item-id') === itemId) {
        var context = contextOf(items[i]);
        if (context) return context;
      }
    }
    return null;
  }

  function track(type, itemId, options) {
    options = options || {};
    if (TYPES.indexOf(type) < 0) {
      if (window.console) console.warn('recsdk.track: unknown type ' + type);
      return false;
    }
    var id = String(itemId);
    var context = null;
    if (options.token && options.position) {
      context = { token: options.token, item_id: id, position: Number(options.position) };
    } else {
      var kept = readJson('sessionStorage', ATTRIBUTION_KEY, {})[id];
      context = kept ? { token: kept.token, item_id: id, position: kept.position } : onPage(id);
    }
    if (!context) return false; // not from a recommended list: nothing to credit
    var queued = emit(context, type, options.value);
    if (type !== 'impression') flush();
    return queued;
  }

  // A link through the logging redirect goes straight to its target once this script
  // runs: the script logs the click, the redirect is the href of pages without script.
  function direct(link) {
    if (!redirect || link.tagName !== 'A') return;
    var url;
    try { url = new URL(link.getAttribute('href'), document.baseURI); } catch (e) { return; }
    if (url.origin !== redirect.origin || url.pathname !== redirect.pathname) return;
    var to = safeUrl(url.searchParams.get('to'), url.href);
    if (!to) return;
    link.setAttribute('data-recsdk-redirect', link.getAttribute('href'));
    link.setAttribute('href', to);
  }

  function scan(scope) {
    var roots = (scope || document).querySelectorAll('[data-recsdk-token]');
    if (scope && scope.hasAttribute && scope.hasAttribute('data-recsdk-token')) {
      roots = [scope].concat(Array.prototype.slice.call(roots));
    }
    Array.prototype.forEach.call(roots, function (root) {
      var items = root.querySelectorAll('[data-recsdk-item-id]');
      Array.prototype.forEach.call(items, function (item) {
        if (attached.has(item)) return;
        attached.add(item);
        watched.add(item);
        if (item.hasAttribute('href')) direct(item);
        Array.prototype.forEach.call(item.querySelectorAll('[href]'), direct);
        if (observer) observer.observe(item);
      });
    });
  }

  function safeUrl(value, base) {
    if (typeof value !== 'string' || !value) return null;
    try {
      var url = new URL(value, base || document.baseURI);
      return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function element(tag, className) {
    var node = document.createElement(tag);
    node.className = className;
    return node;
  }

  function price(amount, currency) {
    if (currency) {
      try {
        return new Intl.NumberFormat(undefined, { style: 'currency', currency: currency })
          .format(amount);
      } catch (e) { /* unknown currency code: plain number below */ }
    }
    return amount.toFixed(2);
  }

  function isPrice(value) { return typeof value === 'number' && isFinite(value); }

  // Renders a widget answer into container, as text and checked URLs only.
  function render(container, data, options) {
    options = options || {};
    while (container.firstChild) container.removeChild(container.firstChild);
    var items = data && Array.isArray(data.items) ? data.items : [];
    if (!items.length || typeof data.token !== 'string') {
      container.hidden = true; // an empty or failed answer leaves no trace on the page
      return container;
    }
    container.setAttribute('data-recsdk-token', data.token);
    if (data.request_id) container.setAttribute('data-recsdk-request-id', String(data.request_id));
    if (data.placement) container.setAttribute('data-recsdk-placement', String(data.placement));
    if (options.title) {
      var heading = element('h3', 'recsdk-title');
      heading.textContent = String(options.title);
      container.appendChild(heading);
    }
    var list = element('ul', 'recsdk-items');
    items.forEach(function (it) {
      var id = String(it.item_id);
      var li = element('li', 'recsdk-item');
      li.setAttribute('data-recsdk-item-id', id);
      li.setAttribute('data-recsdk-position', String(parseInt(it.position, 10)));
      var href = safeUrl(it.url) ||
        (options.itemUrl ? safeUrl(options.itemUrl.split('{id}').join(encodeURIComponent(id))) : null);
      var link = element(href ? 'a' : 'span', 'recsdk-link');
      if (href) link.href = href;
      var image = safeUrl(it.image_url, options.imageBase);
      if (image) {
        var img = element('img', 'recsdk-image');
        img.alt = '';
        img.loading = 'lazy';
        img.src = image;
        link.appendChild(img);
      }
      var name = element('span', 'recsdk-name');
      name.textContent = typeof it.title === 'string' && it.title ? it.title : id;
      link.appendChild(name);
      if (isPrice(it.price)) {
        var now = element('span', 'recsdk-price');
        now.textContent = price(it.price, options.currency);
        link.appendChild(now);
        if (isPrice(it.original_price) && it.original_price > it.price) {
          var was = element('s', 'recsdk-original-price');
          was.textContent = price(it.original_price, options.currency);
          link.appendChild(was);
        }
      }
      li.appendChild(link);
      list.appendChild(li);
    });
    container.appendChild(list);
    container.hidden = false;
    return container;
  }

  function widgetUrl(host, withVisitor) {
    var params = new URLSearchParams();
    ['placement', 'k'].forEach(function (name) {
      var value = host.getAttribute('data-' + name);
      if (value) params.set(name, value);
    });
    var item = host.getAttribute('data-item-id');
    if (item) params.set('item_id', item);
    (host.getAttribute('data-cart') || '').split(',').forEach(function (id) {
      if (id.trim()) params.append('cart', id.trim());
    });
    var visitor = host.getAttribute('data-visitor') || (withVisitor ? visitorToken() : null);
    if (visitor) params.set('visitor', visitor);
    return endpoint + '/widget/recommendations?' + params.toString();
  }

  function fetchWidget(host) {
    var get = function (withVisitor) {
      return window.fetch(widgetUrl(host, withVisitor), { credentials: credentials });
    };
    return get(true).then(function (response) {
      // a stale stored visitor token: forget it and be served as a new visitor
      if (response.status === 403 && !host.getAttribute('data-visitor')) {
        var s = store('localStorage');
        try { if (s) s.removeItem(VISITOR_KEY); } catch (e) { /* blocked */ }
        return get(false);
      }
      return response;
    }).then(function (response) {
      if (!response.ok) throw new Error('recsdk widget: HTTP ' + response.status);
      return response.json();
    }).then(function (data) {
      if (data && typeof data.visitor === 'string' && !sameOrigin) {
        writeJson('localStorage', VISITOR_KEY, data.visitor);
      }
      return data;
    });
  }

  function mount(host) {
    if (mounted.has(host)) return Promise.resolve(null);
    mounted.add(host);
    var container = host;
    if (host.tagName === 'SCRIPT') {
      container = element('div', 'recsdk-widget');
      host.parentNode.insertBefore(container, host.nextSibling);
    }
    var options = {
      title: host.getAttribute('data-title'), itemUrl: host.getAttribute('data-item-url'),
      currency: host.getAttribute('data-currency'),
      imageBase: host.getAttribute('data-image-base')
    };
    return fetchWidget(host).then(function (data) {
      render(container, data, options);
      scan(container);
      return container;
    }).catch(function (error) {
      render(container, null, options); // the page never breaks for a widget
      if (window.console) console.warn(String(error));
      return container;
    });
  }

  function start() {
    scan(document);
    Array.prototype.forEach.call(document.querySelectorAll('[data-recsdk-widget]'), mount);
  }

  document.addEventListener('click', onClick, true);
  document.addEventListener('auxclick', onClick, true);
  document.addEventListener('visibilitychange', onVisibility);
  window.addEventListener('pagehide', flush);
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();

  window.recsdk = {
    version: VERSION, endpoint: endpoint, track: track, flush: flush, scan: scan,
    render: render, mount: mount
  };
})();
