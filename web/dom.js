// Small DOM helpers shared by the pages: element lookup, toasts, a confirmation dialog.

/**
 * @template {HTMLElement} T
 * @param {string} id
 * @param {new () => T} type
 * @returns {T}
 */
export function $(id, type) {
  const el = document.getElementById(id);
  if (!(el instanceof type)) throw new Error(`#${id} missing`);
  return el;
}

/**
 * @param {string} text
 * @param {{kind?: 'error'|'info'|'warning', sticky?: boolean}} [opts]
 * @returns {HTMLElement}
 */
export function toast(text, opts = {}) {
  const el = document.createElement('div');
  el.className = `toast ${opts.kind ?? 'info'}`;
  el.setAttribute('role', opts.kind === 'error' ? 'alert' : 'status');
  const msg = document.createElement('span');
  msg.textContent = text;
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'toast-close';
  close.setAttribute('aria-label', 'Dismiss');
  close.textContent = '×';
  close.addEventListener('click', () => el.remove());
  el.append(msg, close);
  $('toasts', HTMLElement).append(el);
  if (!opts.sticky) setTimeout(() => el.remove(), 8000);
  return el;
}

/**
 * Ask the user to confirm (a modal `<dialog>`, keyboard accessible; Escape cancels).
 * @param {string} text
 * @param {string} okLabel
 * @returns {Promise<boolean>}
 */
export function confirmDialog(text, okLabel) {
  const dialog = /** @type {HTMLDialogElement} */ (document.getElementById('confirm-dialog'));
  const ok = $('confirm-ok', HTMLButtonElement);
  const cancel = $('confirm-cancel', HTMLButtonElement);
  $('confirm-text', HTMLElement).textContent = text;
  ok.textContent = okLabel;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    const onCancel = () => dialog.close('cancel');
    cancel.addEventListener('click', onCancel);
    dialog.addEventListener(
      'close',
      () => {
        cancel.removeEventListener('click', onCancel);
        resolve(dialog.returnValue === 'ok');
      },
      { once: true },
    );
    dialog.showModal();
    cancel.focus();
  });
}
