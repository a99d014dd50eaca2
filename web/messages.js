// What the user is told when the server refuses a join, closes the meeting, or reports an error.
// Codes and reasons are those of docs/protocol.md.

/** Human text for server error codes (the server's own `message` is passed in for detail). */
export const ERROR_TEXT = /** @type {Record<string, (m: string) => string>} */ ({
  bad_message: (m) => `The server did not understand a message from this page (${m}). Try reloading.`,
  too_large: () => 'A message was too large for the server.',
  unsupported_version: () => 'This page is out of date for the server. Please reload the page.',
  invalid_room: (m) => `That room name can't be used: ${m}.`,
  invalid_name: (m) => `That name can't be used: ${m}.`,
  not_joined: () => 'The connection got out of step with the server. Reconnecting may help.',
  already_joined: () => 'This connection has already joined a room.',
  invalid_sdp: (m) => `The server could not set up audio and video with this browser: ${m}.`,
  room_full: () => 'This meeting is full. Try again later.',
  unavailable: () => "The server can't take meetings right now. Trying again…",
  room_locked: () => 'This meeting is locked. Ask a moderator to unlock it.',
  password_required: () => 'This meeting needs a password.',
  wrong_password: () => 'That password is wrong.',
  too_many_attempts: () => 'Too many wrong attempts. Wait a minute and try again.',
  invalid_token: () =>
    'Your sign-in link is not valid here: it may have expired or be meant for another meeting. Ask for a new link.',
  host_required: () => 'The meeting has not started yet. This page joins by itself when a host opens it.',
  not_moderator: () => 'Only moderators can do that.',
  unknown_participant: () => 'That person is no longer here.',
  removed: () => 'A moderator removed you from the meeting. You cannot rejoin it with this session.',
  lobby_full: () => 'Too many people are waiting to get in. Try again in a few minutes.',
  screen_share_busy: () => 'Someone else is presenting. Only one person can present at a time: ask them to stop first.',
  e2ee_required: () =>
    'This meeting is end-to-end encrypted and your browser cannot encrypt. Ask a moderator to allow ' +
    'participants who cannot encrypt, then try again.',
  draining: () => 'The server is restarting. Joining again by itself…',
});

/** Titles of the screen shown when a join is refused. */
export const REFUSED_TITLE = /** @type {Record<string, string>} */ ({
  room_locked: 'This meeting is locked',
  room_full: 'This meeting is full',
  host_required: 'Waiting for the host',
  removed: 'You were removed',
  lobby_full: 'The lobby is full',
  invalid_token: 'Your link is not valid',
  too_many_attempts: 'Too many attempts',
  e2ee_required: 'Your browser cannot join this encrypted meeting',
});

/** Screens for `closed` reasons. */
export const CLOSED_TEXT = /** @type {Record<string, {title: string, detail: string}>} */ ({
  removed: { title: 'You were removed', detail: 'A moderator removed you from the meeting.' },
  meeting_ended: { title: 'The meeting has ended', detail: 'The meeting was ended by a moderator.' },
  denied: { title: 'You were not admitted', detail: 'A moderator declined your request to join.' },
});

/**
 * Notice when the server starts shutting down during the meeting (`draining`).
 * @param {number} seconds
 */
export function drainingText(seconds) {
  return `The server is restarting. This meeting can continue for up to ${seconds} seconds; ` +
    'then this page reconnects by itself when the server is back.';
}

/** Errors in reply to `join` that send the user back to the pre-join page's password field. */
export const PASSWORD_ERRORS = new Set(['password_required', 'wrong_password', 'too_many_attempts']);

/**
 * @param {string} code
 * @param {string} message
 * @returns {string}
 */
export function errorText(code, message) {
  const f = ERROR_TEXT[code];
  return f ? f(message) : message || code;
}
