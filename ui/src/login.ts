/**
 * The login page: user and password (POST /api/login), or a one-time link's token from the
 * `#login=TOKEN` fragment (POST /api/login/link). The fragment never reaches the server in a
 * URL and is removed from the address bar and history before anything else happens.
 */
import { api, ApiError, type SessionInfo } from './api';
import { h, replaceChildren, setText } from './dom';

/** Take `#login=TOKEN` out of the URL (and history) and return the token, or null. */
export function takeLoginToken(): string | null {
  const match = /^#login=([A-Za-z0-9_-]+)$/.exec(location.hash);
  if (!match) return null;
  history.replaceState(null, '', location.pathname + location.search);
  return match[1]!;
}

export async function exchangeLoginToken(token: string): Promise<SessionInfo> {
  return api<SessionInfo>('POST', '/api/login/link', { body: { token }, quiet401: true });
}

export function loginMessage(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.status === 429) return `Too many failed logins: ${err.message}`;
    return err.message;
  }
  return (err as Error).message;
}

export function renderLogin(root: HTMLElement, onLoggedIn: (s: SessionInfo) => void, initialError?: string): void {
  const user = h('input', { id: 'login-user', name: 'username', autocomplete: 'username', required: true, 'data-testid': 'login-user' });
  const password = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true, 'data-testid': 'login-password' });
  const error = h('p', { class: 'error', role: 'alert', 'data-testid': 'login-error', hidden: !initialError }, initialError ?? '');
  const submit = h('button', { type: 'submit', class: 'primary', 'data-testid': 'login-submit' }, 'Log in');
  const form = h(
    'form',
    { class: 'login-form', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'shellwire console'),
    h('label', { for: 'login-user' }, 'User'),
    user,
    h('label', { for: 'login-password' }, 'Password'),
    password,
    submit,
    error,
    h('p', { class: 'hint' }, 'Or open a one-time link from ', h('code', {}, 'shellwire web-login --via GATEWAY'), '.'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submit.disabled = true;
    error.hidden = true;
    api<SessionInfo>('POST', '/api/login', { body: { user: user.value, password: password.value }, quiet401: true })
      .then((s) => {
        password.value = '';
        onLoggedIn(s);
      })
      .catch((err: unknown) => {
        setText(error, loginMessage(err));
        error.hidden = false;
        password.value = '';
        password.focus();
      })
      .finally(() => {
        submit.disabled = false;
      });
  });
  replaceChildren(root, h('div', { class: 'login-page' }, form));
  user.focus();
}
