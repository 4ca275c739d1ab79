/*
 * The operator page of ipam-syncd: addresses, subnets, one address, health,
 * over /api/v1 only.  Plain DOM code: every text that comes from the API is
 * set as text (textContent or text nodes), never parsed as HTML, and the
 * page has no inline script or style, so that the Content-Security-Policy
 * the daemon sends can forbid both.
 */
'use strict';

(function () {
	const API = '/api/v1';
	const STATUSES = ['available', 'allocated', 'reserved', 'quarantine'];
	const MAP_MAX = 1024;		/* a /22: the largest pool drawn as a map */
	const MAPS_OPEN_UP_TO = 8;	/* subnets whose maps open by themselves */
	const TOKEN_KEY = 'ipam-syncd.token';
	const REQUESTER_KEY = 'ipam-syncd.requester';

	/* The token's scope: unknown, anonymous (none given), read, write, bad. */
	let scope = 'unknown';
	/* Each render takes a number; answers for an older render are dropped. */
	let generation = 0;
	/* The pages before the current one of the address list (their cursors). */
	let cursors = [];
	let listKey = '';

	/* ---- DOM helpers ---- */

	/*
	 * Makes an element.  props: class, text, attributes (set as attributes,
	 * never "style" or "on…"), on (listeners); children: nodes, strings
	 * (made text nodes), arrays, null (skipped).
	 */
	function el(tag, props, ...children) {
		const node = document.createElement(tag);
		props = props || {};
		for (const [key, value] of Object.entries(props)) {
			if (value === undefined || value === null || value === false)
				continue;
			if (key === 'class')
				node.className = value;
			else if (key === 'text')
				node.textContent = String(value);
			else if (key === 'on')
				for (const [event, fn] of Object.entries(value))
					node.addEventListener(event, fn);
			else if (key === 'dataset')
				Object.assign(node.dataset, value);
			else
				node.setAttribute(key, value === true ? '' : String(value));
		}
		append(node, children);
		return node;
	}

	/* Appends nodes, strings (as text) and arrays of them. */
	function append(node, children) {
		for (const child of children) {
			if (child === null || child === undefined || child === false)
				continue;
			if (Array.isArray(child))
				append(node, child);
			else if (child instanceof Node)
				node.appendChild(child);
			else
				node.appendChild(document.createTextNode(String(child)));
		}
	}

	/* Replaces the children of node. */
	function replace(node, ...children) {
		node.replaceChildren();
		append(node, children);
	}

	const view = () => document.getElementById('view');

	/* Shows a message under the header (kind: info, error). */
	function notice(text, kind) {
		const box = document.getElementById('notice');
		delete box.dataset.unreachable;
		if (!text) {
			box.hidden = true;
			box.textContent = '';
			return;
		}
		box.className = 'notice ' + (kind || 'info');
		box.textContent = text;
		box.hidden = false;
	}

	/* ---- formatting ---- */

	/* A time as "2026-11-28 10:00:00" in local time, or "never". */
	function formatTime(iso) {
		if (!iso)
			return 'never';
		const d = new Date(iso);
		if (isNaN(d))
			return String(iso);
		const pad = (n) => String(n).padStart(2, '0');
		return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' +
		    pad(d.getDate()) + ' ' + pad(d.getHours()) + ':' +
		    pad(d.getMinutes()) + ':' + pad(d.getSeconds());
	}

	/* How long ago a time was, in words ("5 min ago"). */
	function ago(iso) {
		if (!iso)
			return 'never';
		const s = (Date.now() - new Date(iso).getTime()) / 1000;
		if (isNaN(s))
			return '';
		if (s < 60)
			return 'just now';
		if (s < 3600)
			return Math.floor(s / 60) + ' min ago';
		if (s < 86400)
			return Math.floor(s / 3600) + ' h ago';
		return Math.floor(s / 86400) + ' d ago';
	}

	/* A <time> element: the local time, the ISO time as its datetime. */
	function timeNode(iso, relative) {
		if (!iso)
			return el('span', { class: 'muted', text: 'never' });
		return el('time', { datetime: iso, title: formatTime(iso) },
		    relative ? ago(iso) : formatTime(iso));
	}

	function statusBadge(status) {
		return el('span', { class: 'badge st-' + (STATUSES.includes(status) ?
		    status : 'none'), text: status || 'no row' });
	}

	function typeBadge(type) {
		return el('span', { class: 'badge type', text: type || '' });
	}

	/* The active dot and when the address last answered. */
	function activeCell(row) {
		return el('span', { class: 'active' },
		    el('span', { class: 'dot ' + (row.active ? 'on' : 'off'),
		    'aria-hidden': 'true' }),
		    el('span', { class: 'sr', text: row.active ? 'active' :
		    'not active' }),
		    ' ', el('span', { class: 'seen' }, row.last_seen_at ?
		    timeNode(row.last_seen_at, true) :
		    el('span', { class: 'muted', text: 'never seen' })));
	}

	function vrfSegment(vrf) {
		return vrf ? encodeURIComponent(vrf) : '-';
	}

	function addressHref(vrf, ip) {
		return '#/address/' + vrfSegment(vrf) + '/' + encodeURIComponent(ip);
	}

	// Address rows as links, comma-separated.
	function addressLinks(rows) {
		return rows.map((row, i) => [i ? ', ' : '', el('a', { class: 'mono',
		    href: addressHref(row.vrf, row.ip_address),
		    text: row.ip_address })]);
	}

	function vrfName(vrf) {
		return vrf ? vrf : '(default)';
	}

	/* ---- the API ---- */

	function token() {
		return sessionStorage.getItem(TOKEN_KEY) || '';
	}

	function requester() {
		return sessionStorage.getItem(REQUESTER_KEY) || '';
	}

	/*
	 * One request to the API: {status, body, headers}; body is parsed JSON
	 * when the answer is JSON, else text.  A 401 asks for a token.
	 */
	async function api(method, path, body, extraHeaders) {
		const headers = Object.assign({}, extraHeaders || {});
		if (token())
			headers.Authorization = 'Bearer ' + token();
		if (body !== undefined)
			headers['Content-Type'] = 'application/json';
		if (method !== 'GET' && requester())
			headers['X-Requester'] = requester();
		let response;
		try {
			response = await fetch(path.startsWith('/api/') ? path : API + path,
			    { method, headers, cache: 'no-store', credentials: 'omit',
			    body: body === undefined ? undefined :
			    JSON.stringify(body) });
		} catch (error) {
			notice('The daemon cannot be reached: ' + error.message,
			    'error');
			document.getElementById('notice').dataset.unreachable = '1';
			throw error;
		}
		/* It answers again: that notice is no longer true. */
		if (document.getElementById('notice').dataset.unreachable)
			notice(null);
		const type = response.headers.get('Content-Type') || '';
		let parsed;
		if (type.startsWith('application/json'))
			parsed = await response.json();
		else
			parsed = await response.text();
		if (response.status === 401) {
			notice('This daemon needs a token: enter it under "Token" ' +
			    'at the top.', 'error');
			document.getElementById('token-box').open = true;
		}
		return { status: response.status, body: parsed,
		    headers: response.headers };
	}

	/* A read that must succeed: the JSON, or an Error with the API's detail. */
	async function read(path) {
		const answer = await api('GET', path);
		if (answer.status !== 200) {
			const detail = answer.body && answer.body.detail ?
			    answer.body.detail : String(answer.body).slice(0, 200);
			throw new Error(path + ': ' + answer.status + ' ' + detail);
		}
		return answer.body;
	}

	/*
	 * One look at a request being followed: the answer, or null when the
	 * daemon cannot be reached (restarting, say: a write it took is
	 * applied once it is back), so that the caller looks again instead
	 * of giving up on a write that may still be applied.
	 */
	async function poll(path) {
		try {
			return await api('GET', path);
		} catch (error) {
			return null;
		}
	}

	/*
	 * How long to wait before the next look: what a 429 or 503 asks
	 * (Retry-After, in seconds), else half a second.
	 */
	function pollDelay(polled) {
		const after = polled && (polled.status === 429 ||
		    polled.status === 503) && polled.headers &&
		    Number(polled.headers.get('Retry-After'));
		return after > 0 ? Math.min(after, 60) * 1000 : 500;
	}

	/*
	 * The row a decided request names: its row, or only vrf and
	 * ip_address when the address has no row (a mark in no subnet, a
	 * subnet deleted since), as a mark write's 200 gives them.
	 */
	function outcomeRow(outcome) {
		return outcome.row || { vrf: outcome.vrf,
		    ip_address: outcome.address };
	}

	/*
	 * Whether a follow begun in view generation gen goes on: not once the
	 * page shows another view (it would poll, and write notices, for a
	 * view that is gone), nor after the time it is given.
	 */
	function following(gen, until) {
		return gen === generation && Date.now() < until;
	}

	/* How long a write is followed before the page says to look again. */
	const FOLLOW_MS = 60000;

	/*
	 * Waits for a write that answered 202 (not applied within the API's
	 * wait), or 503 after it was published (Kafka had not acknowledged
	 * it in time): polls the request until it is decided.
	 */
	async function settle(answer) {
		const ids = (answer.body && answer.body.requests) || [];
		const gen = generation, until = Date.now() + FOLLOW_MS;
		let where = null;
		if (answer.status === 202)
			where = answer.headers.get('Location') ||
			    (answer.body && answer.body.location);
		else if (answer.status === 503 && ids.length === 1)
			where = '/requests/' + encodeURIComponent(ids[0]);
		let delay = 500;
		while (where) {
			await new Promise((resolve) => setTimeout(resolve, delay));
			if (!following(gen, until))
				break;
			const polled = await poll(where);
			delay = pollDelay(polled);
			const state = polled && polled.body && polled.body.state;
			if (polled && polled.status === 200 && state === 'applied')
				return { status: 200, body: outcomeRow(polled.body) };
			if (polled && polled.status === 200 && state === 'refused')
				return { status: 409, body: { detail:
				    polled.body.detail, current: polled.body.row } };
		}
		return answer;
	}

	/*
	 * Polls requests (an allocation's, one per address) until each is
	 * decided, a minute has passed or the page shows another view: their
	 * outcomes, null where none came.
	 */
	async function decideAll(ids) {
		const outcomes = ids.map(() => null);
		const gen = generation, until = Date.now() + FOLLOW_MS;
		let delay = 500;
		while (outcomes.includes(null)) {
			await new Promise((resolve) => setTimeout(resolve, delay));
			if (!following(gen, until))
				break;
			delay = 500;
			for (const [k, id] of ids.entries()) {
				if (outcomes[k])
					continue;
				const polled = await poll('/requests/' +
				    encodeURIComponent(id));
				/* Told to wait (rate limit, too busy): the round ends. */
				if (polled && (polled.status === 429 ||
				    polled.status === 503)) {
					delay = pollDelay(polled);
					break;
				}
				const state = polled && polled.body &&
				    polled.body.state;
				if (polled && polled.status === 200 && (state === 'applied' ||
				    state === 'refused'))
					outcomes[k] = polled.body;
			}
		}
		return outcomes;
	}

	/*
	 * What an allocation's followed requests came to (decideAll()): the
	 * addresses reserved, with those its earlier rounds held; how many
	 * were refused; the ids still undecided; and the lines that say so,
	 * the reserved ones after reservedText.
	 */
	function followedAllocation(held, ids, outcomes) {
		const rows = held.concat(outcomes.filter((o) => o &&
		    o.state === 'applied').map(outcomeRow));
		const refused = outcomes.filter((o) => o &&
		    o.state === 'refused').length;
		const waiting = ids.filter((id, i) => !outcomes[i]);
		return { rows, refused, waiting, lines: (reservedText) => [
		    rows.length ? el('p', {}, reservedText, addressLinks(rows)) :
		    null,
		    refused ? el('p', { text: refused + ' refused: another ' +
		    'request took the address first.' }) : null,
		    waiting.length ? el('p', { text: waiting.length + ' not ' +
		    'applied yet (' + waiting.join(', ') + '): look again in a ' +
		    'moment.' }) : null] };
	}

	/*
	 * Finds the token's scope.  Only a 401 says the token is refused: a
	 * daemon starting (503), too busy (429) or away leaves the scope
	 * unknown, and the next page looks again.
	 */
	async function probeScope() {
		if (!token()) {
			scope = 'anonymous';
		} else {
			let answer = null;
			try {
				answer = await api('GET', '/whoami');
			} catch (error) {
				/* The notice says the daemon cannot be reached. */
			}
			scope = answer && answer.status === 200 ? answer.body.scope :
			    answer && answer.status === 401 ? 'bad' : 'unknown';
		}
		showScope();
	}

	function showScope() {
		const text = { unknown: 'Token…', anonymous: 'No token',
		    read: 'Token: read only', write: 'Token: write',
		    bad: 'Token refused' }[scope];
		const state = document.getElementById('token-state');
		state.textContent = text;
		state.className = 'scope-' + scope;
		document.body.dataset.scope = scope;
	}

	/* ---- the address list ---- */

	/* The filter of the list from the URL's query. */
	function filterFrom(query) {
		const q = new URLSearchParams(query);
		return {
			status: q.getAll('status').filter((s) => STATUSES.includes(s)),
			ip_type: q.get('ip_type') || '',
			subnet: q.get('subnet') || '',
			active: q.get('active') || '',
			vrf: q.has('vrf') ? q.get('vrf') : null,
			q: q.get('q') || '',
			limit: q.get('limit') || '100',
		};
	}

	/* The API's query for a filter (without paging). */
	function filterQuery(filter, withLimit) {
		const q = new URLSearchParams();
		for (const s of filter.status)
			q.append('status', s);
		for (const key of ['ip_type', 'subnet', 'active', 'q'])
			if (filter[key])
				q.set(key, filter[key]);
		if (filter.vrf !== null)
			q.set('vrf', filter.vrf);
		if (withLimit && filter.limit !== '100')
			q.set('limit', filter.limit);
		return q;
	}

	function select(id, label, options, value) {
		return [el('label', { for: id, text: label }),
		    el('select', { id, name: id }, options.map(([v, text]) =>
		    el('option', { value: v, selected: v === value, text })))];
	}

	/* The filter form, filled from filter; subnets fill its choices. */
	function filterForm(filter, subnets) {
		const vrfs = [...new Set(subnets.map((s) => s.vrf))].sort();
		const statusBoxes = STATUSES.map((s) => el('label',
		    { class: 'check' }, el('input', { type: 'checkbox',
		    id: 'f-status-' + s, name: 'status', value: s,
		    checked: filter.status.includes(s) }), ' ', statusBadge(s)));
		const form = el('form', { id: 'filter-form', class: 'filters',
		    'aria-label': 'Filter the addresses' },
		    el('fieldset', { class: 'statuses' },
			el('legend', { text: 'Status' }), statusBoxes),
		    el('div', { class: 'field' }, select('f-type', 'Type',
			[['', 'any'], ['static', 'static'], ['dhcp', 'dhcp']],
			filter.ip_type)),
		    el('div', { class: 'field' }, select('f-subnet', 'Subnet',
			[['', 'any']].concat(subnets.map((s) => [s.id,
			s.cidr + (s.name ? ' ' + s.name : '')])), filter.subnet)),
		    el('div', { class: 'field' }, select('f-active', 'Answers pings',
			[['', 'any'], ['true', 'yes'], ['false', 'no']],
			filter.active)),
		    el('div', { class: 'field' }, select('f-vrf', 'VRF',
			[['*', 'any']].concat(vrfs.map((v) => [v, vrfName(v)])),
			filter.vrf === null ? '*' : filter.vrf)),
		    el('div', { class: 'field grow' },
			el('label', { for: 'f-q', text: 'Search' }),
			el('input', { id: 'f-q', type: 'search', value: filter.q,
			placeholder: 'address prefix, hostname, MAC, description' })),
		    el('div', { class: 'field' }, select('f-limit', 'Rows per page',
			[['25', '25'], ['50', '50'], ['100', '100'], ['250', '250'],
			['1000', '1000']], filter.limit)),
		    el('div', { class: 'buttons' },
			el('button', { type: 'submit', class: 'primary',
			id: 'f-apply', text: 'Apply' }),
			el('button', { type: 'button', id: 'f-clear', text: 'Clear',
			on: { click: () => { location.hash = '#/addresses'; } } }),
			el('button', { type: 'button', id: 'export-csv',
			text: 'Export CSV', on: { click: () => exportCsv(filter) } })));
		form.addEventListener('submit', (event) => {
			event.preventDefault();
			const next = {
				status: STATUSES.filter((s) =>
				    document.getElementById('f-status-' + s).checked),
				ip_type: form.querySelector('#f-type').value,
				subnet: form.querySelector('#f-subnet').value,
				active: form.querySelector('#f-active').value,
				vrf: form.querySelector('#f-vrf').value === '*' ? null :
				    form.querySelector('#f-vrf').value,
				q: form.querySelector('#f-q').value.trim(),
				limit: form.querySelector('#f-limit').value,
			};
			const hash = '#/addresses' + (filterQuery(next, true).toString() ?
			    '?' + filterQuery(next, true).toString() : '');
			if (location.hash === hash)
				render();
			else
				location.hash = hash;
		});
		return form;
	}

	/* Saves every row of the filter as CSV (the API's format=csv). */
	async function exportCsv(filter) {
		const q = filterQuery(filter, false);
		q.set('format', 'csv');
		const headers = token() ? { Authorization: 'Bearer ' + token() } : {};
		let response;
		try {
			response = await fetch(API + '/addresses?' + q.toString(),
			    { headers, cache: 'no-store', credentials: 'omit' });
		} catch (error) {
			notice('The export failed: the daemon cannot be reached (' +
			    error.message + ').', 'error');
			return;
		}
		if (!response.ok) {
			notice('The export failed: ' + response.status, 'error');
			return;
		}
		/*
		 * A large export comes page by page; one the daemon had to cut
		 * (PostgreSQL gone mid-way) ends without its last chunk, and
		 * nothing of it is saved.
		 */
		let blob;
		try {
			blob = await response.blob();
		} catch (error) {
			notice('The export was cut before its end (' +
			    error.message + '): nothing was saved. Try again; ' +
			    'the daemon\'s log says why.', 'error');
			return;
		}
		const url = URL.createObjectURL(blob);
		const link = el('a', { href: url, download: 'addresses.csv',
		    class: 'sr' });
		document.body.appendChild(link);
		link.click();
		link.remove();
		setTimeout(() => URL.revokeObjectURL(url), 60000);
		notice('Exported ' + (blob.size / 1024).toFixed(1) +
		    ' KiB as addresses.csv.', 'info');
	}

	/* The counts per status at the top (of every row), as filter links. */
	function countsBar(stats, total) {
		const a = stats.addresses || {};
		return el('div', { class: 'counts', id: 'counts' },
		    el('a', { class: 'count all', href: '#/addresses' },
			el('span', { class: 'n', id: 'count-total',
			text: a.total ?? '?' }), el('span', { text: 'addresses' })),
		    STATUSES.map((s) => el('a', { class: 'count st-' + s,
			href: '#/addresses?status=' + s },
			el('span', { class: 'n', id: 'count-' + s, text: a[s] ?? '?' }),
			el('span', { text: s }))),
		    el('span', { class: 'count matching' },
			el('span', { class: 'n', id: 'total', text: total ?? '?' }),
			el('span', { text: 'match the filter' })));
	}

	function addressRow(row) {
		return el('tr', { dataset: { ip: row.ip_address,
		    status: row.status } },
		    el('td', {}, el('a', { class: 'mono', href: addressHref(row.vrf,
			row.ip_address), text: row.ip_address }),
			row.vrf ? el('span', { class: 'vrf', text: row.vrf }) : null),
		    el('td', {}, statusBadge(row.status)),
		    el('td', { class: 'wide' }, typeBadge(row.ip_type)),
		    el('td', {}, activeCell(row)),
		    el('td', { class: 'hostname', text: row.hostname || '' }),
		    el('td', { class: 'wide mono', text: row.mac_address || '' }),
		    el('td', { class: 'wide' }, row.subnet_id ? el('a', {
			href: '#/subnet/' + encodeURIComponent(row.subnet_id),
			text: row.subnet_id }) : ''),
		    el('td', { class: 'description', text: row.description || '' }),
		    el('td', { class: 'wide' }, timeNode(row.updated_at, true)));
	}

	async function viewAddresses(query) {
		const gen = ++generation;
		const filter = filterFrom(query);
		const key = filterQuery(filter, true).toString();
		if (key !== listKey) {
			cursors = [];
			listKey = key;
		}
		document.title = 'Addresses · ipam-syncd';
		const [stats, subnets] = await Promise.all([read('/stats'),
		    read('/subnets')]);
		if (gen !== generation)
			return;
		const body = el('tbody');
		const table = el('table', { id: 'addresses', class: 'rows' },
		    el('caption', { class: 'sr', text: 'Addresses' }),
		    el('thead', {}, el('tr', {}, ['Address', 'Status', 'Type',
			'Active', 'Hostname', 'MAC address', 'Subnet',
			'Description', 'Updated'].map((h, i) => el('th', {
			scope: 'col', class: [2, 5, 6, 8].includes(i) ? 'wide' : null,
			text: h })))), body);
		const pager = el('nav', { class: 'pager',
		    'aria-label': 'Pages of the address list' });
		/* On a phone the filters fold away unless one is set. */
		const filtered = filterQuery(filter, false).toString() !== '';
		const filters = el('details', { class: 'filter-box', open:
		    filtered || window.matchMedia('(min-width: 761px)').matches },
		    el('summary', { text: filtered ? 'Filters (set)' : 'Filters' }),
		    filterForm(filter, subnets.items));
		replace(view(), el('h1', { text: 'Addresses' }),
		    countsBar(stats, null), filters,
		    el('div', { class: 'scroll' }, table), pager);
		await loadPage(gen, filter, body, pager, cursors);
	}

	/* Loads the page after the last cursor of the stack into body. */
	async function loadPage(gen, filter, body, pager, stack) {
		const q = filterQuery(filter, false);
		q.set('limit', filter.limit);
		q.set('count', 'true');
		const cursor = stack.length ? stack[stack.length - 1] : null;
		if (cursor)
			q.set('cursor', cursor);
		const page = await read('/addresses?' + q.toString());
		if (gen !== generation)
			return;
		/* The page is there: its stack is the one the pager follows. */
		cursors = stack;
		document.getElementById('total').textContent = page.total;
		replace(body, page.items.length ? page.items.map(addressRow) :
		    el('tr', {}, el('td', { colspan: 9, class: 'empty',
		    text: 'No address matches the filter.' })));
		const first = (cursors.length * Number(filter.limit)) + 1;
		const last = first + page.items.length - 1;
		/*
		 * One load at a time: the buttons wait for it (a double click
		 * would skip a page), and a load that fails leaves the page
		 * and the stack as they were, and says why.
		 */
		const go = async (next) => {
			const buttons = [...pager.querySelectorAll('button')];
			const was = buttons.map((b) => b.disabled);
			const focused = pager.contains(document.activeElement) ?
			    document.activeElement.id : null;
			buttons.forEach((b) => { b.disabled = true; });
			try {
				await loadPage(gen, filter, body, pager, next);
				/*
				 * The pager is made again: the keyboard goes on
				 * from the same button, or the nearest one that
				 * still leads somewhere (Previous on the last page).
				 */
				if (focused && gen === generation) {
					const same = document.getElementById(focused);
					const open = [...pager.querySelectorAll(
					    'button')].filter((b) => !b.disabled);
					const target = same && !same.disabled ? same :
					    open[open.length - 1];
					if (target)
						target.focus();
				}
			} catch (e) {
				if (gen !== generation)
					return;
				buttons.forEach((b, i) => { b.disabled = was[i]; });
				notice('The page could not be read: ' + e.message,
				    'error');
			}
		};
		replace(pager,
		    el('button', { type: 'button', id: 'first-page',
			disabled: cursors.length === 0, text: 'First',
			on: { click: () => go([]) } }),
		    el('button', { type: 'button', id: 'prev-page',
			disabled: cursors.length === 0, text: 'Previous',
			on: { click: () => go(cursors.slice(0, -1)) } }),
		    el('span', { id: 'page-range', class: 'range',
			text: page.items.length ? first + '–' + last + ' of ' +
			page.total : '0 of ' + page.total }),
		    el('button', { type: 'button', id: 'next-page',
			disabled: !page.next_cursor, text: 'Next',
			on: { click: () => go(cursors.concat([page.next_cursor]))
			} }));
	}

	/* ---- one address ---- */

	function fieldList(pairs) {
		return el('dl', { class: 'fields' }, pairs.filter((p) => p)
		    .map(([name, value]) => [el('dt', { text: name }),
		    el('dd', {}, value instanceof Node ? value :
		    (value === null || value === undefined || value === '' ?
		    el('span', { class: 'muted', text: '—' }) : String(value)))]));
	}

	function rowFields(row) {
		return fieldList([
			['Status', statusBadge(row.status)],
			['Type', typeBadge(row.ip_type)],
			['Active', activeCell(row)],
			['Subnet', row.subnet_id ? el('a', { href: '#/subnet/' +
			    encodeURIComponent(row.subnet_id), text: row.subnet_id }) :
			    null],
			['Hostname', row.hostname],
			['Server', row.server_id],
			['MAC address', row.mac_address],
			['Platform', row.platform],
			['Manufacturer', row.manufacturer],
			['Description', row.description],
			['Round trip', row.rtt_us === null || row.rtt_us === undefined ?
			    null : (row.rtt_us / 1000).toFixed(2) + ' ms'],
			['Last checked', timeNode(row.last_checked_at)],
			['Created', timeNode(row.created_at)],
			['Updated', timeNode(row.updated_at)],
		]);
	}

	/* What an audit entry changed, as "field: before → after" lines. */
	function auditChanges(entry) {
		const before = entry.before || {};
		const after = entry.after || {};
		const keys = ['status', 'description', 'hostname', 'server_id',
		    'mac_address', 'subnet_id', 'ip_type', 'active'];
		const lines = [];
		for (const k of keys) {
			const b = before[k], a = after[k];
			if (JSON.stringify(b) === JSON.stringify(a))
				continue;
			if (entry.action === 'insert' && (a === null || a === undefined))
				continue;
			lines.push(el('li', {}, el('span', { class: 'key', text: k }),
			    ': ', entry.action === 'insert' ? '' : el('span',
			    { class: 'old', text: b === undefined || b === null ?
			    '—' : String(b) }), entry.action === 'insert' ? '' :
			    ' → ', el('span', { class: 'new', text: a === undefined ||
			    a === null ? '—' : String(a) })));
		}
		return lines.length ? el('ul', { class: 'changes' }, lines) : null;
	}

	function timeline(history) {
		if (!history.length)
			return el('p', { class: 'muted', text: 'No history.' });
		return el('ol', { class: 'timeline', id: 'history' },
		    history.map((h) => el('li', { class: 'event act-' + h.action,
			dataset: { action: h.action } },
			el('div', { class: 'when' }, timeNode(h.changed_at)),
			el('div', { class: 'what' },
			    el('span', { class: 'badge action', text: h.action }), ' ',
			    h.requested_by ? el('span', { class: 'who',
				text: 'by ' + h.requested_by }) :
				el('span', { class: 'muted', text: 'by the sync' }),
			    h.source_topic ? el('span', { class: 'source muted',
				text: ' · ' + h.source_topic + ' [' +
				h.source_partition + '] @' + h.source_offset }) : null,
			    h.run ? el('span', { class: 'run muted',
				text: ' · together with ' + h.run[0] + ' – ' +
				h.run[1] }) : null),
			auditChanges(h))));
	}

	/* Shows a write's outcome: done, "someone else got it", or an error. */
	function showOutcome(box, answer, doneText, reload) {
		/* The operator has gone to another page meanwhile: leave it. */
		if (!box.isConnected)
			return;
		box.hidden = false;
		if (answer.status === 200 || answer.status === 201) {
			/* The page as it now is, with the outcome in its box. */
			reload(doneText);
			return;
		}
		if (answer.status === 409) {
			const current = answer.body.current;
			box.className = 'outcome conflict';
			replace(box, el('h3', { text: 'Someone else got it' }),
			    el('p', { class: 'detail', text: answer.body.detail || '' }),
			    current ? [el('p', { text: 'The address as it is now:' }),
			    fieldList([['Status', statusBadge(current.status)],
			    ['Description', current.description],
			    ['Hostname', current.hostname],
			    ['Server', current.server_id],
			    ['Updated', timeNode(current.updated_at)]])] : null,
			    el('button', { type: 'button', text: 'Show it as it is now',
			    on: { click: () => reload() } }));
			box.scrollIntoView({ block: 'center' });
			box.querySelector('button').focus({ preventScroll: true });
			return;
		}
		box.className = 'outcome error';
		const detail = answer.body && answer.body.detail ? answer.body.detail :
		    String(answer.body).slice(0, 200);
		// A 503 with requests came after they were published (Kafka did
		// not acknowledge them in time): they may still be applied.
		const pending = (answer.body && answer.body.requests) || [];
		replace(box, el('p', { text: (answer.status === 202 ?
		    'Not applied yet; the daemon is still working on it: ' :
		    (pending.length ? 'Not sure (' : 'Refused (') + answer.status +
		    '): ') + detail }), pending.length ? el('p', { text:
		    'Published, and still not decided: request ' +
		    pending.join(', ') + ' (look again in a moment).' }) : null);
	}

	/* The reserve, quarantine and release forms of one address. */
	function actions(vrf, ip, detail, reload, done) {
		const row = detail.row;
		const box = el('div', { id: 'action-result', class: 'outcome' +
		    (done ? ' ok' : ''), role: 'alert', hidden: !done },
		    done ? el('p', { text: done }) : null);
		if (scope !== 'write') {
			return el('section', { class: 'card actions', id: 'actions' },
			    el('h2', { text: 'Actions' }),
			    el('p', { class: 'muted', text: scope === 'read' ?
			    'This token may only read. Enter a write token to ' +
			    'reserve, quarantine or release.' : 'Enter a write token ' +
			    '(under "Token" at the top) to reserve, quarantine or ' +
			    'release.' }));
		}
		const path = '/marks/' + vrfSegment(vrf) + '/' + encodeURIComponent(ip);
		const etag = detail.etag;
		/* A mark or a holder without a row (unplaced) is no free address. */
		const available = (!row || row.status === 'available') &&
		    !detail.mark && !(detail.holders && detail.holders.length);
		async function send(method, body, doneText, buttons) {
			const was = buttons.map((b) => b.disabled);
			buttons.forEach((b) => { b.disabled = true; });
			const headers = {};
			/* Apply only to the address as shown, else 409. */
			if (!(body && body.if_available) && etag)
				headers['If-Match'] = etag;
			try {
				const answer = await settle(await api(method, path, body,
				    headers));
				showOutcome(box, answer, doneText, reload);
			} finally {
				buttons.forEach((b, i) => { b.disabled = was[i]; });
			}
		}
		const description = el('input', { id: 'reserve-description',
		    type: 'text', maxlength: 1024, value: row && row.description ?
		    row.description : '' });
		const reason = el('input', { id: 'quarantine-reason', type: 'text',
		    maxlength: 1024 });
		const reserveButton = el('button', { type: 'submit', id: 'reserve',
		    class: 'primary', text: 'Reserve' });
		const quarantineButton = el('button', { type: 'submit',
		    id: 'quarantine', class: 'danger', text: 'Quarantine' });
		const releaseButton = el('button', { type: 'button', id: 'release',
		    text: 'Release', disabled: !detail.mark,
		    title: detail.mark ? null : 'No reservation or quarantine to ' +
		    'release' });
		const all = [reserveButton, quarantineButton, releaseButton];
		const reserveForm = el('form', { class: 'action', id: 'reserve-form' },
		    el('label', { for: 'reserve-description', text: 'Description' }),
		    el('div', { class: 'inline' }, description, reserveButton));
		reserveForm.addEventListener('submit', (event) => {
			event.preventDefault();
			const body = { status: 'reserved',
			    description: description.value };
			if (available)
				body.if_available = true;
			send('PUT', body, 'Reserved.', all);
		});
		const quarantineForm = el('form', { class: 'action',
		    id: 'quarantine-form' },
		    el('label', { for: 'quarantine-reason', text: 'Reason' }),
		    el('div', { class: 'inline' }, reason, quarantineButton));
		quarantineForm.addEventListener('submit', (event) => {
			event.preventDefault();
			const body = { status: 'quarantine' };
			if (reason.value)
				body.reason = reason.value;
			send('PUT', body, 'Quarantined.', all);
		});
		releaseButton.addEventListener('click', () =>
		    send('DELETE', undefined, 'Released.', all));
		return el('section', { class: 'card actions', id: 'actions' },
		    el('h2', { text: 'Actions' }),
		    el('p', { class: 'muted', text: available ?
		    'Reserving asks for the address only while it is available.' :
		    'Each action applies only to the address as shown here.' }),
		    reserveForm, quarantineForm,
		    el('div', { class: 'action' }, releaseButton), box);
	}

	async function viewAddress(vrfPart, ip, done) {
		const gen = ++generation;
		const vrf = vrfPart === '-' ? '' : vrfPart;
		document.title = ip + ' · ipam-syncd';
		const answer = await api('GET', '/addresses/' + vrfSegment(vrf) + '/' +
		    encodeURIComponent(ip));
		if (gen !== generation)
			return;
		const back = el('p', {}, el('a', { href: '#/addresses', text:
		    '← Addresses' }));
		if (answer.status === 404) {
			replace(view(), back, el('h1', { class: 'mono', text: ip }),
			    el('p', { text: 'This address has no row, no mark, no ' +
			    'holder and no history.' }));
			return;
		}
		if (answer.status !== 200) {
			replace(view(), back, el('h1', { class: 'mono', text: ip }),
			    el('p', { class: 'error', text: (answer.body &&
			    answer.body.detail) || 'The address cannot be read.' }));
			return;
		}
		const d = answer.body;
		const reload = (message) => viewAddress(vrfPart, ip, message);
		replace(view(), back,
		    el('h1', {}, el('span', { class: 'mono', text: ip }),
			vrf ? el('span', { class: 'vrf', text: 'vrf ' + vrf }) : null,
			' ', d.row ? statusBadge(d.row.status) : statusBadge(null)),
		    el('div', { class: 'columns' },
			el('section', { class: 'card', id: 'row' },
			    el('h2', { text: 'Row' }),
			    d.row ? rowFields(d.row) : el('p', { class: 'muted',
			    text: 'No row: the address is outside every pool and ' +
			    'no server holds it.' })),
			el('div', {},
			    actions(vrf, ip, d, reload, done),
			    el('section', { class: 'card', id: 'holders' },
				el('h2', { text: 'Holders' }), d.holders.length ?
				el('ul', { class: 'plain' }, d.holders.map((h) =>
				el('li', {}, el('span', { class: 'hostname',
				text: h.hostname || '(no hostname)' }),
				el('span', { class: 'muted', text: ' server ' + h.id +
				(h.nic_mac ? ' · ' + h.nic_mac : '') +
				(h.device_type ? ' · ' + h.device_type : '') }))))
				: el('p', { class: 'muted', text: 'No server holds ' +
				'this address.' })),
			    el('section', { class: 'card', id: 'mark' },
				el('h2', { text: 'Mark' }), d.mark ? fieldList([
				['Status', statusBadge(d.mark.status)],
				d.mark.status === 'quarantine' ?
				['Reason', d.mark.reason] :
				['Description', d.mark.description],
				['Requested by', d.mark.requested_by],
				['Since', timeNode(d.mark.updated_at)]]) :
				el('p', { class: 'muted', text: 'Not reserved or ' +
				'quarantined.' })),
			    d.conflicts.length ? el('section', { class: 'card warn',
				id: 'conflicts' }, el('h2', { text: 'Conflicts' }),
				el('ul', { class: 'plain' }, d.conflicts.map((c) =>
				el('li', {}, el('span', { class: 'badge st-quarantine',
				text: c.kind }), ' ', c.detail || '')))) : null)),
		    el('section', { class: 'card' }, el('h2', { text: 'History' }),
			timeline(d.history)));
		/* After a write, the keyboard goes on from its outcome. */
		const result = document.getElementById('action-result');
		if (done && result) {
			result.tabIndex = -1;
			result.focus();
		}
	}

	/* ---- subnets ---- */

	/* An IPv4 address as a number, or null. */
	function ipv4(text) {
		const parts = String(text).split('.');
		if (parts.length !== 4)
			return null;
		let n = 0;
		for (const p of parts) {
			const v = Number(p);
			if (!/^\d+$/.test(p) || v > 255)
				return null;
			n = n * 256 + v;
		}
		return n;
	}

	function ipv4Text(n) {
		return [n >>> 24 & 255, n >>> 16 & 255, n >>> 8 & 255, n & 255]
		    .join('.');
	}

	/*
	 * The addresses of a subnet's pools (IPv4) as numbers in order, or
	 * null when they are not IPv4 or more than MAP_MAX.
	 */
	function poolAddresses(pools) {
		const out = [];
		for (const range of pools) {
			const [a, b] = String(range).split('-');
			const first = ipv4(a), last = ipv4(b === undefined ? a : b);
			if (first === null || last === null || last < first)
				return null;
			if (out.length + (last - first + 1) > MAP_MAX)
				return null;
			for (let n = first; n <= last; n++)
				out.push(n);
		}
		return out.sort((x, y) => x - y);
	}

	/* The utilisation bar of a subnet's pool and its legend. */
	function utilisation(subnet) {
		const st = subnet.stats;
		const size = st.pool_size || 0;
		/* Servers in the subnet but outside its pools have rows too. */
		const outside = st.available + st.allocated + st.reserved +
		    st.quarantine - size;
		const bar = el('div', { class: 'bar', role: 'img', 'aria-label':
		    Math.round(st.utilisation * 100) + '% of the pool used' });
		/* The bar is the pool alone; the legend counts every row. */
		const pool = st.pool || st;
		for (const s of ['allocated', 'reserved', 'quarantine',
		    'available']) {
			if (!pool[s])
				continue;
			const part = el('span', { class: 'part st-' + s,
			    title: s + ' in the pool: ' + pool[s] });
			/* CSSOM, not a style attribute: the policy allows it. */
			part.style.flexGrow = String(pool[s]);
			bar.appendChild(part);
		}
		return el('div', { class: 'usage' }, bar,
		    el('ul', { class: 'legend' },
			['allocated', 'reserved', 'quarantine', 'available'].map((s) =>
			el('li', {}, el('span', { class: 'swatch st-' + s,
			'aria-hidden': 'true' }), s + ' ',
			el('strong', { class: 'n', dataset: { stat: s }, text: st[s] }))),
			el('li', {}, el('span', { class: 'dot on', 'aria-hidden':
			'true' }), 'active ', el('strong', { dataset: { stat: 'active' },
			text: st.active })),
			el('li', { class: 'muted', text: 'pool ' + size + ' · ' +
			(st.utilisation * 100).toFixed(1) + '% used' +
			(outside > 0 ? ' · ' + outside + ' allocated outside the pool' :
			'') })));
	}

	/* Every row of a subnet, page after page, as a Map by address. */
	async function subnetRows(id) {
		const rows = new Map();
		let cursor = null;
		do {
			const q = new URLSearchParams({ subnet: id, limit: '1000' });
			if (cursor)
				q.set('cursor', cursor);
			const page = await read('/addresses?' + q.toString());
			for (const row of page.items)
				rows.set(row.ip_address, row);
			cursor = page.next_cursor;
		} while (cursor);
		return rows;
	}

	/*
	 * Draws the map of a subnet's pool into holder.  Only the last
	 * drawing asked of a holder draws: one begun before the map was
	 * hidden (hideMap()) or asked again leaves it as it is.
	 */
	async function drawMap(subnet, holder) {
		const cells = poolAddresses(subnet.static_ip_pools);
		if (!cells || !cells.length)
			return;
		const ticket = String(Number(holder.dataset.drawing || 0) + 1);
		holder.dataset.drawing = ticket;
		replace(holder, el('p', { class: 'muted', text: 'Reading the ' +
		    'pool…' }));
		let rows;
		try {
			rows = await subnetRows(subnet.id);
			if (holder.dataset.drawing !== ticket)
				return;
		} catch (error) {
			if (holder.dataset.drawing !== ticket)
				return;
			/* Too many reads, a timeout: said, with a way to try again. */
			replace(holder, el('p', { class: 'error', role: 'status',
			    text: 'The map could not be read: ' + error.message + ' ' }),
			    el('button', { type: 'button', class: 'map-retry',
			    text: 'Try again', on: { click: () => drawMap(subnet,
			    holder) } }));
			return;
		}
		const grid = el('div', { class: 'map', role: 'group',
		    'aria-label': 'Map of the pool of ' + subnet.cidr + ': one ' +
		    'cell per address', dataset: { subnet: subnet.id } });
		/*
		 * One line per block of 32 addresses that holds pool addresses,
		 * so that a column is always the same last bits: addresses of
		 * the block outside the pool are blanks.
		 */
		const inPool = new Set(cells);
		const blocks = [...new Set(cells.map((n) => n - n % 32))];
		for (const block of blocks) {
			const start = ipv4Text(block).split('.');
			grid.appendChild(el('span', { class: 'map-label',
			    title: ipv4Text(block), text: '.' + start[2] + '.' +
			    start[3] }));
			for (let n = block; n < block + 32; n++) {
				if (!inPool.has(n)) {
					grid.appendChild(el('span', { class: 'gap' }));
					continue;
				}
				const ip = ipv4Text(n);
				const row = rows.get(ip);
				const status = row ? row.status : 'none';
				/* Out of the tab order: the list link serves keyboards. */
				grid.appendChild(el('a', { class: 'cell st-' + status,
				    href: addressHref(subnet.vrf, ip), tabindex: '-1',
				    title: ip + ' ' + status + (row && row.hostname ?
				    ' ' + row.hostname : '') + (row && row.description ?
				    ' (' + row.description + ')' : ''),
				    dataset: { ip, status } }));
			}
		}
		replace(holder, grid);
	}

	/* Hides a map, and whatever drawing of it is still reading. */
	function hideMap(holder) {
		holder.dataset.drawing = String(Number(holder.dataset.drawing ||
		    0) + 1);
		holder.replaceChildren();
	}

	/* One subnet's card: name, bar, links, map, allocate form. */
	function subnetCard(subnet, openMap) {
		const mapHolder = el('div', { class: 'map-holder' });
		const cells = poolAddresses(subnet.static_ip_pools);
		let mapButton = null;
		if (cells && cells.length) {
			mapButton = el('button', { type: 'button', class: 'map-toggle',
			    'aria-expanded': 'false', text: 'Show the map' });
			mapButton.addEventListener('click', () => {
				const open = mapButton.getAttribute('aria-expanded') ===
				    'true';
				mapButton.setAttribute('aria-expanded', String(!open));
				mapButton.textContent = open ? 'Show the map' :
				    'Hide the map';
				if (open)
					hideMap(mapHolder);
				else
					drawMap(subnet, mapHolder);
			});
			if (openMap) {
				mapButton.setAttribute('aria-expanded', 'true');
				mapButton.textContent = 'Hide the map';
				drawMap(subnet, mapHolder);
			}
		}
		return el('section', { class: 'card subnet',
		    id: subnetDomId('subnet-', subnet.id),
		    dataset: { subnet: subnet.id } },
		    el('h2', {}, el('a', { href: '#/subnet/' +
			encodeURIComponent(subnet.id), text: subnet.name || subnet.id }),
			' ', el('span', { class: 'mono cidr', text: subnet.cidr }),
			subnet.vrf ? el('span', { class: 'vrf', text: 'vrf ' +
			subnet.vrf }) : null),
		    el('p', { class: 'muted pools', text: 'id ' + subnet.id +
			' · pools: ' + (subnet.static_ip_pools.length ?
			subnet.static_ip_pools.join(', ') : 'none') +
			(subnet.ping ? ' · pinged' : '') }),
		    utilisation(subnet),
		    el('div', { class: 'buttons' },
			el('a', { class: 'button', href: '#/addresses?subnet=' +
			encodeURIComponent(subnet.id), text: 'List its addresses' }),
			mapButton,
			!cells && subnet.static_ip_pools.length ? el('span',
			{ class: 'muted', text: 'No map: the pool is larger than ' +
			'a /22, or IPv6.' }) :
			null),
		    mapHolder, allocateForm(subnet));
	}

	/*
	 * The card of a subnet whose addresses changed, with its counts and
	 * map as they now are and the outcome box kept.
	 */
	async function refreshCard(form, subnet, box) {
		const card = form.closest('section.card.subnet');
		const again = await api('GET', '/subnets/' +
		    encodeURIComponent(subnet.id));
		if (!card || !card.isConnected || again.status !== 200)
			return;
		const toggle = card.querySelector('.map-toggle');
		const fresh = subnetCard(again.body, toggle !== null &&
		    toggle.getAttribute('aria-expanded') === 'true');
		/* The fresh form writes its own box: it takes the outcome. */
		const freshBox = fresh.querySelector('form.allocate .outcome');
		if (freshBox) {
			freshBox.className = box.className;
			freshBox.hidden = box.hidden;
			freshBox.replaceChildren(...box.childNodes);
		}
		card.replaceWith(fresh);
	}

	/*
	 * An element id made from a subnet's id: the id itself when it holds
	 * only letters, digits, _ and -, else those with a digest of the
	 * whole id, so that two subnets ("a.b", "a_b") never share one.
	 */
	function subnetDomId(prefix, subnetId) {
		const plain = subnetId.replace(/[^A-Za-z0-9_-]/g, '_');
		if (plain === subnetId)
			return prefix + plain;
		let hash = 2166136261;
		for (const ch of subnetId) {
			hash ^= ch.codePointAt(0);
			hash = Math.imul(hash, 16777619) >>> 0;
		}
		return prefix + plain + '-' + hash.toString(36);
	}

	/* "Allocate next free" for a write token. */
	function allocateForm(subnet) {
		if (scope !== 'write' || !subnet.stats.pool_size)
			return null;
		const id = subnetDomId('alloc-', subnet.id);
		const description = el('input', { id: id + '-description',
		    type: 'text', maxlength: 1024 });
		const count = el('input', { id: id + '-count', type: 'number',
		    min: 1, max: 256, value: 1, class: 'count-input' });
		const button = el('button', { type: 'submit', class: 'primary',
		    text: 'Allocate next free' });
		const box = el('div', { class: 'outcome', role: 'alert',
		    hidden: true });
		const form = el('form', { class: 'action allocate' },
		    el('div', { class: 'field grow' }, el('label',
			{ for: id + '-description', text: 'Description' }), description),
		    el('div', { class: 'field' }, el('label', { for: id + '-count',
			text: 'How many' }), count),
		    el('div', { class: 'buttons' }, button), box);
		form.addEventListener('submit', async (event) => {
			event.preventDefault();
			button.disabled = true;
			try {
				const answer = await api('POST', '/subnets/' +
				    encodeURIComponent(subnet.id) + '/allocate',
				    { count: Number(count.value) || 1,
				    description: description.value });
				box.hidden = false;
				// What earlier rounds of the allocation reserved.
				const held = (answer.body && answer.body.allocated) || [];
				if (answer.status === 201) {
					box.className = 'outcome ok';
					replace(box, el('p', {}, 'Reserved for you: ',
					    addressLinks(answer.body.addresses)));
					await refreshCard(form, subnet, box);
				} else if (answer.status === 202) {
					/*
					 * Published: the daemon reserves them as it applies
					 * them.  Followed here (the button waits), so that
					 * a second click does not allocate again.
					 */
					box.className = 'outcome';
					replace(box, el('p', { text: 'Published, not applied ' +
					    'yet: waiting for the daemon to apply it…' }));
					const ids = (answer.body && answer.body.requests) || [];
					const came = followedAllocation(held, ids,
					    await decideAll(ids));
					if (!box.isConnected)
						return;
					box.className = 'outcome' + (came.refused ||
					    came.waiting.length ? ' conflict' : ' ok');
					replace(box, ...came.lines('Reserved for you: '));
					await refreshCard(form, subnet, box);
				} else if (answer.status === 409) {
					/*
					 * Its last round published some reservations and
					 * could not go on (Kafka took only part of them):
					 * those may still reserve addresses, followed here.
					 */
					const ids = (answer.body && answer.body.requests) || [];
					const heading = el('h3', { text: held.length ||
					    ids.length ? 'Only part of it could be allocated' :
					    'Not enough free addresses' });
					const detail = el('p', { text: answer.body.detail || '' });
					box.className = 'outcome conflict';
					replace(box, heading, detail, held.length ? el('p', {},
					    'Reserved for you, and still held: ',
					    addressLinks(held)) : null, ids.length ? el('p',
					    { text: ids.length + ' published, being followed (' +
					    ids.join(', ') + ')…' }) : null);
					if (ids.length) {
						const came = followedAllocation(held, ids,
						    await decideAll(ids));
						if (!box.isConnected)
							return;
						/* Every one refused, none held before: none came. */
						if (!came.rows.length && !came.waiting.length)
							heading.textContent = 'Not enough free addresses';
						replace(box, heading, detail, ...came.lines(
						    'Reserved for you, and still held: '));
					}
					if (held.length || ids.length)
						await refreshCard(form, subnet, box);
				} else {
					// A 503 may come after events were published (Kafka
					// did not acknowledge them in time): not a refusal.
					const pending = (answer.body &&
					    answer.body.requests) || [];
					box.className = 'outcome error';
					replace(box, el('p', { text: (pending.length ?
					    'Not sure (' : 'Refused (') + answer.status +
					    '): ' + ((answer.body && answer.body.detail) ||
					    '') }),
					    held.length ? el('p', {}, 'Reserved for you, and ' +
					    'still held: ', addressLinks(held)) : null,
					    pending.length ? el('p', { text: pending.length +
					    ' published, may still be applied (' +
					    pending.join(', ') + '): look again in a ' +
					    'moment.' }) : null);
					if (held.length || pending.length)
						await refreshCard(form, subnet, box);
				}
			} finally {
				button.disabled = false;
			}
		});
		return form;
	}

	async function viewSubnets() {
		const gen = ++generation;
		document.title = 'Subnets · ipam-syncd';
		const subnets = await read('/subnets');
		if (gen !== generation)
			return;
		const open = subnets.items.length <= MAPS_OPEN_UP_TO;
		replace(view(), el('h1', { text: 'Subnets' }),
		    el('ul', { class: 'legend key' }, STATUSES.concat(['none'])
			.map((s) => el('li', {}, el('span', { class: 'swatch st-' + s,
			'aria-hidden': 'true' }), s === 'none' ? 'no row' : s))),
		    subnets.items.length ? el('div', { class: 'subnets' },
			subnets.items.map((s) => subnetCard(s, open))) :
			el('p', { class: 'muted', text: 'No subnets yet.' }));
	}

	async function viewSubnet(id) {
		const gen = ++generation;
		document.title = id + ' · ipam-syncd';
		const answer = await api('GET', '/subnets/' + encodeURIComponent(id));
		if (gen !== generation)
			return;
		const back = el('p', {}, el('a', { href: '#/subnets',
		    text: '← Subnets' }));
		if (answer.status !== 200) {
			replace(view(), back, el('h1', { text: id }), el('p',
			    { class: 'error', text: (answer.body && answer.body.detail) ||
			    'No such subnet.' }));
			return;
		}
		replace(view(), back, el('h1', { text: answer.body.name ||
		    answer.body.id }), subnetCard(answer.body, true));
	}

	/* ---- health ---- */

	/* The samples of a Prometheus text: [{name, labels, value}]. */
	function parseMetrics(text) {
		const out = [];
		for (const line of String(text).split('\n')) {
			if (!line || line.startsWith('#'))
				continue;
			const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/
			    .exec(line);
			if (!m)
				continue;
			const labels = {};
			for (const l of (m[3] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
				labels[l[1]] = l[2];
			out.push({ name: m[1], labels, value: Number(m[4]) });
		}
		return out;
	}

	function metric(samples, name, labels) {
		const found = samples.filter((s) => s.name === name &&
		    Object.entries(labels || {}).every(([k, v]) => s.labels[k] === v));
		return found.length ? found.reduce((a, s) => a + s.value, 0) : null;
	}

	function tile(id, label, value, state) {
		return el('div', { class: 'tile ' + (state || ''), id },
		    el('span', { class: 'n', text: value === null ? '—' : value }),
		    el('span', { class: 'label', text: label }));
	}

	function table(id, headers, rows, empty) {
		if (!rows.length)
			return el('p', { class: 'muted', id, text: empty });
		return el('div', { class: 'scroll' }, el('table', { id, class: 'rows' },
		    el('thead', {}, el('tr', {}, headers.map((h) => el('th',
			{ scope: 'col', text: h })))),
		    el('tbody', {}, rows.map((cells) => el('tr', {}, cells.map((c) =>
			el('td', {}, c)))))));
	}

	async function viewHealth() {
		const gen = ++generation;
		document.title = 'Health · ipam-syncd';
		const [stats, conflicts, dead, unplaced, metricsText, ready] =
		    await Promise.all([read('/stats'), read('/conflicts'),
		    read('/dead-letters?limit=50'), read('/unplaced'),
		    fetch('/metrics', { cache: 'no-store' }).then((r) => r.text())
			.catch(() => ''),
		    fetch('/readyz', { cache: 'no-store' }).then(async (r) =>
			({ ok: r.ok, text: await r.text() }))
			.catch(() => ({ ok: false, text: 'unreachable' }))]);
		if (gen !== generation)
			return;
		const m = parseMetrics(metricsText);
		const lag = metric(m, 'ipam_syncd_consumer_lag_messages');
		const sweeps = metric(m, 'ipam_syncd_sweeps_total');
		const sweepSeconds = metric(m, 'ipam_syncd_sweep_duration_seconds',
		    { phase: 'total' });
		const lagRows = m.filter((s) =>
		    s.name === 'ipam_syncd_consumer_lag_messages').map((s) =>
		    [el('span', { class: 'mono', text: s.labels.topic || '' }),
		    s.labels.partition || '', String(s.value)]);
		replace(view(), el('h1', { text: 'Health' }),
		    el('div', { class: 'tiles' },
			tile('h-ready', 'ready', ready.ok ? 'yes' : 'no',
			ready.ok ? 'good' : 'bad'),
			tile('h-conflicts', 'conflicts', stats.conflicts,
			stats.conflicts ? 'bad' : 'good'),
			tile('h-dead-letters', 'dead letters', stats.dead_letters,
			stats.dead_letters ? 'bad' : 'good'),
			tile('h-unplaced-servers', 'unplaced servers',
			stats.unplaced.servers, stats.unplaced.servers ? 'warn' : 'good'),
			tile('h-unplaced-marks', 'unplaced marks', stats.unplaced.marks,
			stats.unplaced.marks ? 'warn' : 'good'),
			tile('h-lag', 'consumer lag (messages)', lag,
			lag ? 'warn' : 'good'),
			tile('h-partitions', 'partitions assigned',
			metric(m, 'ipam_syncd_consumer_assigned_partitions')),
			tile('h-sweeps', 'sweeps completed', sweeps),
			tile('h-last-sweep', sweeps ? 'the last sweep took; ' +
			metric(m, 'ipam_syncd_sweep_answering_addresses') + ' of ' +
			metric(m, 'ipam_syncd_sweep_targets') + ' answered' :
			'last sweep: none yet (off, or starting)', sweeps ?
			sweepSeconds.toFixed(1) + ' s' : 'none')),
		    el('p', { class: 'muted' }, 'Rows last changed ',
			timeNode(stats.last_change_at), ' · ', stats.subnets,
			' subnets · ', 'readiness: ', ready.text.trim()),
		    el('section', { class: 'card' }, el('h2', { text: 'Conflicts' }),
			table('conflict-table', ['Address', 'Subnet', 'Kind', 'Detail',
			'Since'], conflicts.items.map((c) => [el('a', { class: 'mono',
			href: addressHref(c.vrf, c.ip_address), text: c.ip_address }),
			c.subnet_id || '', el('span', { class: 'badge st-quarantine',
			text: c.kind }), c.detail || '', timeNode(c.first_seen_at)]),
			'No conflicts.')),
		    el('section', { class: 'card' },
			el('h2', { text: 'Dead letters' }),
			table('dead-letter-table', ['Received', 'Topic', 'Partition',
			'Offset', 'Key', 'Reason'], dead.items.map((d) =>
			[timeNode(d.received_at), el('span', { class: 'mono',
			text: d.topic }), String(d.partition), String(d.offset),
			d.key === null ? el('span', { class: 'muted',
			text: d.keyless ? '(no key)' : '(not text)' }) :
			el('span', { class: 'mono', text: d.key }),
			el('span', { class: 'reason', text: d.reason || '' })]),
			'No dead letters.'),
			dead.next_cursor ? el('p', { class: 'muted', text: 'The 50 ' +
			'newest are shown.' }) : null),
		    el('section', { class: 'card' },
			el('h2', { text: 'Unplaced servers' }),
			el('p', { class: 'muted', text: 'Servers whose address lies ' +
			'in no subnet of their vrf: they have no row.' }),
			table('unplaced-servers', ['Server', 'Hostname', 'Address',
			'VRF'], unplaced.servers.map((s) => [s.id, el('span',
			{ class: 'hostname', text: s.hostname || '' }),
			el('a', { class: 'mono', href: addressHref(s.vrf, s.ip_address),
			text: s.ip_address }), vrfName(s.vrf)]), 'None.'),
			el('h2', { text: 'Unplaced marks' }),
			table('unplaced-marks', ['Address', 'Status',
			'Description or reason', 'Requested by'], unplaced.marks.map((k) => [el('a',
			{ class: 'mono', href: addressHref(k.vrf, k.address),
			text: k.address }), statusBadge(k.status),
			(k.status === 'quarantine' ? k.reason : k.description) || '',
			k.requested_by || '']), 'None.')),
		    el('section', { class: 'card' },
			el('h2', { text: 'Consumer lag by partition' }),
			table('lag-table', ['Topic', 'Partition', 'Lag'], lagRows,
			'No partition assigned.')));
	}

	/* ---- routing ---- */

	/* Renders the page the URL's hash names. */
	async function render() {
		if (scope === 'unknown' && token())
			await probeScope();
		const hash = location.hash.replace(/^#/, '') || '/addresses';
		const [path, query] = hash.split('?');
		const parts = path.split('/').filter((p) => p !== '');
		let decoded;
		try {
			decoded = parts.map(decodeURIComponent);
		} catch (error) {
			decoded = ['addresses'];
		}
		const page = decoded[0] || 'addresses';
		delete document.body.dataset.rendered;
		const nav = page === 'address' ? 'addresses' :
		    page === 'subnet' ? 'subnets' : page;
		for (const link of document.querySelectorAll('nav a[data-page]')) {
			if (link.dataset.page === nav)
				link.setAttribute('aria-current', 'page');
			else
				link.removeAttribute('aria-current');
		}
		try {
			if (page === 'address' && decoded.length === 3)
				await viewAddress(decoded[1], decoded[2]);
			else if (page === 'subnets')
				await viewSubnets();
			else if (page === 'subnet' && decoded.length === 2)
				await viewSubnet(decoded[1]);
			else if (page === 'health')
				await viewHealth();
			else
				await viewAddresses(query || '');
			document.body.dataset.rendered = location.hash || '#/addresses';
		} catch (error) {
			replace(view(), el('h1', { text: 'Cannot show this page' }),
			    el('p', { class: 'error', text: error.message }));
		}
	}

	/* The token form: kept in sessionStorage, its scope probed. */
	function setupToken() {
		const form = document.getElementById('token-form');
		const input = document.getElementById('token-input');
		const name = document.getElementById('requester-input');
		input.value = token();
		name.value = requester();
		form.addEventListener('submit', async (event) => {
			event.preventDefault();
			/* Both travel in HTTP headers: printable ASCII only. */
			const ascii = /^[\x20-\x7e]*$/;
			if (!ascii.test(input.value.trim())) {
				notice('The token holds a character that is not ' +
				    'printable ASCII: check what was pasted.', 'error');
				return;
			}
			if (!ascii.test(name.value.trim())) {
				notice('Your name goes with every write in an HTTP ' +
				    'header: printable ASCII only (no accents or other ' +
				    'scripts), at most 64 characters.', 'error');
				return;
			}
			sessionStorage.setItem(TOKEN_KEY, input.value.trim());
			sessionStorage.setItem(REQUESTER_KEY, name.value.trim());
			notice('');
			await probeScope();
			if (scope !== 'bad')
				document.getElementById('token-box').open = false;
			render();
		});
		document.getElementById('token-forget').addEventListener('click',
		    async () => {
			sessionStorage.removeItem(TOKEN_KEY);
			input.value = '';
			await probeScope();
			render();
		});
	}

	document.addEventListener('DOMContentLoaded', async () => {
		setupToken();
		window.addEventListener('hashchange', () => {
			notice('');
			render().then(() => view().focus({ preventScroll: true }));
		});
		await probeScope();
		render();
	});
})();
