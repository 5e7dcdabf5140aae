// The login form: an admin token, exchanged for a session cookie by POST login.
import { h } from '../dom.js';

export function renderLogin(main, { message, submit }) {
  const input = h('input', {
    id: 'login-token', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false',
    required: true, placeholder: 'Paste an admin token', 'aria-describedby': 'login-help',
  });
  const err = h('div', { class: 'login-error', role: 'alert', id: 'login-error' });
  const note = message ? h('div', { class: 'login-note', role: 'status' }, message) : null;
  const button = h('button', { type: 'submit', class: 'btn primary', id: 'login-submit' }, 'Log in');
  const form = h('form', { class: 'login-form', novalidate: true },
    h('label', { for: 'login-token' }, 'Admin token'), input,
    h('p', { class: 'muted small', id: 'login-help' },
      'A token from server.admin_token or [[server.admin_tokens]]. It is sent once; the session lives in an HttpOnly cookie.'),
    err, button);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    if (!input.value.trim()) {
      err.textContent = 'Enter a token.';
      input.focus();
      return;
    }
    button.disabled = true;
    button.textContent = 'Logging in…';
    try {
      await submit(input.value.trim());
    } catch (ex) {
      err.textContent = ex.status === 401 ? `Wrong token: ${ex.message}` : ex.message;
      button.disabled = false;
      button.textContent = 'Log in';
      input.select();
    }
  });
  main.appendChild(h('div', { class: 'login' },
    h('div', { class: 'login-card card' },
      h('div', { class: 'login-brand' }, h('img', { src: new URL('../favicon.svg', import.meta.url).href, alt: '', width: 28, height: 28 }), h('span', null, 'firebreak console')),
      note, form)));
  input.focus();
}
