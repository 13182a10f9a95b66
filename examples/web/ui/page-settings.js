// page-settings.js: the access token (#/settings). In auth mode `none` (local
// development) no token is needed; with `jwt` the token is kept in sessionStorage (this
// tab only), sent as a bearer header over HTTP and as ?access_token= on the WebSocket.
// Saving reconnects the WebSocket so the new token applies at once.

import { getToken, setToken, tokenTenant } from './api.js';
import { h, replaceChildren } from './dom.js';

export function mountSettings({ el, client }) {
  document.title = 'Settings · coordinator';
  const input = h('textarea', { id: 's-token', rows: 4, spellcheck: 'false', autocomplete: 'off', 'aria-describedby': 's-token-help' });
  input.value = getToken();
  const status = h('p', { role: 'status', class: 'muted' });
  const save = (token) => {
    setToken(token);
    client.close();
    client.connect();
    status.textContent = token ? `Token saved for this tab; tenant ${tokenTenant(token)}. Reconnected.` : 'Token removed. Reconnected.';
  };
  replaceChildren(el, h('h1', {}, 'Settings'),
    h('form', { class: 'start', onsubmit: (e) => { e.preventDefault(); save(input.value.trim()); } },
      h('label', { for: 's-token' }, 'Access token (JWT)'),
      h('p', { id: 's-token-help', class: 'help' },
        'Leave empty when the daemon runs with auth mode none. The token stays in this tab (sessionStorage).'),
      input,
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Save'), ' ',
        h('button', { type: 'button', onclick: () => { input.value = ''; save(''); } }, 'Forget token'))),
    status,
    h('p', {}, 'Current tenant: ', h('code', {}, tokenTenant())));
}
