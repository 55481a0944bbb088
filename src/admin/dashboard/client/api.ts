/** Calls to the admin API of the node serving the page (same origin), and the admin token. */
import { byId } from './dom.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function errorOf(res: Response): Promise<ApiError> {
  let message = `HTTP ${res.status}`;
  try {
    const body = (await res.json()) as { error?: unknown };
    if (typeof body.error === 'string') message = body.error;
  } catch {
    /* not JSON: keep the status */
  }
  return new ApiError(res.status, message);
}

export async function getJson<T>(path: string): Promise<T> {
  const res = await fetch(path, { headers: { accept: 'application/json' }, cache: 'no-store' });
  if (!res.ok) throw await errorOf(res);
  return (await res.json()) as T;
}

export async function postJson<T>(path: string, body: unknown, token: string): Promise<T> {
  const res = await fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw await errorOf(res);
  return (await res.json()) as T;
}

/**
 * The admin token, asked for in a dialog when an action needs it. Kept only in this tab's memory
 * (or sessionStorage when the user ticks "remember"), never in the page's URL or in localStorage.
 */
export class TokenStore {
  #token: string | null = null;
  readonly #key = 'tandem.adminToken';

  constructor() {
    try {
      this.#token = sessionStorage.getItem(this.#key);
    } catch {
      this.#token = null;
    }
  }

  forget(): void {
    this.#token = null;
    try {
      sessionStorage.removeItem(this.#key);
    } catch {
      /* storage unavailable: nothing to forget */
    }
  }

  /** The remembered token, or the one typed in the dialog; null when the user cancels. */
  async get(action: string): Promise<string | null> {
    if (this.#token) return this.#token;
    const dialog = byId<HTMLDialogElement>('token-dialog');
    const form = byId<HTMLFormElement>('token-form');
    const input = byId<HTMLInputElement>('token-input');
    const remember = byId<HTMLInputElement>('token-remember');
    const cancel = byId<HTMLButtonElement>('token-cancel');
    byId('token-action').textContent = action;
    input.value = '';
    return new Promise((resolve) => {
      const done = (token: string | null) => {
        form.removeEventListener('submit', onSubmit);
        dialog.removeEventListener('close', onClose);
        cancel.removeEventListener('click', onCancel);
        if (dialog.open) dialog.close();
        resolve(token);
      };
      const onSubmit = (ev: Event) => {
        ev.preventDefault();
        const token = input.value.trim();
        if (!token) return void input.focus();
        this.#token = token;
        if (remember.checked) {
          try {
            sessionStorage.setItem(this.#key, token);
          } catch {
            /* storage unavailable: the token lives in memory only */
          }
        }
        done(token);
      };
      const onClose = () => done(null);
      const onCancel = () => done(null);
      form.addEventListener('submit', onSubmit);
      cancel.addEventListener('click', onCancel);
      dialog.addEventListener('close', onClose);
      dialog.showModal();
      input.focus();
    });
  }
}
