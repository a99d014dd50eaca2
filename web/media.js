// Local media: getUserMedia with fallbacks and human-readable failure messages. No DOM.

/** @typedef {'blocked'|'not_found'|'in_use'|'other'} MediaFailure */

/**
 * @typedef {object} LocalMediaResult
 * @property {MediaStreamTrack|null} audio
 * @property {MediaStreamTrack|null} video
 * @property {string|null} message  what to tell the user when something is missing
 * @property {MediaFailure|null} failure
 */

/**
 * @param {string} [deviceId]
 * @returns {MediaTrackConstraints}
 */
export function audioConstraints(deviceId) {
  /** @type {MediaTrackConstraints} */
  const c = { echoCancellation: true, noiseSuppression: true };
  if (deviceId) c.deviceId = { exact: deviceId };
  return c;
}

/**
 * @param {string} [deviceId]
 * @returns {MediaTrackConstraints}
 */
export function videoConstraints(deviceId) {
  /** @type {MediaTrackConstraints} */
  const c = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
  if (deviceId) c.deviceId = { exact: deviceId };
  return c;
}

export const MESSAGES = {
  blocked:
    'Camera and microphone access was blocked. You can still join and see and hear others; ' +
    "to be seen, allow access in your browser's site settings.",
  not_found:
    'No camera or microphone found. You can still join and see and hear others; ' +
    'connect a device and rejoin to be seen and heard.',
  in_use:
    'Your camera or microphone is in use by another application. You can still join and see and hear others.',
  other: 'Camera and microphone could not be started. You can still join and see and hear others.',
  no_camera: 'No camera available: you can join with your microphone only.',
  no_mic: 'No microphone available: you can join with your camera only.',
};

/**
 * @param {unknown} err
 * @returns {MediaFailure}
 */
export function classify(err) {
  const name = err instanceof Error || err instanceof DOMException ? err.name : '';
  if (name === 'NotAllowedError' || name === 'SecurityError' || name === 'PermissionDeniedError') {
    return 'blocked';
  }
  if (name === 'NotFoundError' || name === 'OverconstrainedError' || name === 'DevicesNotFoundError') {
    return 'not_found';
  }
  if (name === 'NotReadableError' || name === 'TrackStartError' || name === 'AbortError') return 'in_use';
  return 'other';
}

/**
 * Get microphone and camera; fall back to audio-only or video-only when one of them fails.
 * @param {{audio: boolean, video: boolean, audioDevice?: string, videoDevice?: string}} want
 * @returns {Promise<LocalMediaResult>}
 */
export async function getLocalMedia(want) {
  if (!navigator.mediaDevices?.getUserMedia) {
    return { audio: null, video: null, failure: 'other', message: MESSAGES.other };
  }
  if (!want.audio && !want.video) return { audio: null, video: null, failure: null, message: null };
  const a = want.audio ? audioConstraints(want.audioDevice) : false;
  const v = want.video ? videoConstraints(want.videoDevice) : false;
  try {
    const s = await navigator.mediaDevices.getUserMedia({ audio: a, video: v });
    return { audio: s.getAudioTracks()[0] ?? null, video: s.getVideoTracks()[0] ?? null, failure: null, message: null };
  } catch (err) {
    const failure = classify(err);
    if (failure === 'blocked' || !(want.audio && want.video)) {
      return { audio: null, video: null, failure, message: MESSAGES[failure] };
    }
    // One of the two may work on its own.
    /** @type {MediaStreamTrack|null} */
    let audio = null;
    /** @type {MediaStreamTrack|null} */
    let video = null;
    try {
      audio = (await navigator.mediaDevices.getUserMedia({ audio: a })).getAudioTracks()[0] ?? null;
    } catch {
      /* none */
    }
    try {
      video = (await navigator.mediaDevices.getUserMedia({ video: v })).getVideoTracks()[0] ?? null;
    } catch {
      /* none */
    }
    if (audio && !video) return { audio, video, failure, message: MESSAGES.no_camera };
    if (video && !audio) return { audio, video, failure, message: MESSAGES.no_mic };
    if (audio && video) return { audio, video, failure: null, message: null };
    return { audio, video, failure, message: MESSAGES[failure] };
  }
}

/**
 * Get a new camera track (camera turned back on).
 * @param {string} [deviceId]
 * @returns {Promise<MediaStreamTrack>}
 */
export async function getCameraTrack(deviceId) {
  const s = await navigator.mediaDevices.getUserMedia({ video: videoConstraints(deviceId) });
  const t = s.getVideoTracks()[0];
  if (!t) throw new Error('no video track');
  return t;
}

/**
 * Get a new microphone track.
 * @param {string} [deviceId]
 * @returns {Promise<MediaStreamTrack>}
 */
export async function getMicTrack(deviceId) {
  const s = await navigator.mediaDevices.getUserMedia({ audio: audioConstraints(deviceId) });
  const t = s.getAudioTracks()[0];
  if (!t) throw new Error('no audio track');
  return t;
}

/**
 * @returns {Promise<{cameras: MediaDeviceInfo[], mics: MediaDeviceInfo[]}>}
 */
export async function listDevices() {
  if (!navigator.mediaDevices?.enumerateDevices) return { cameras: [], mics: [] };
  const all = await navigator.mediaDevices.enumerateDevices();
  return {
    cameras: all.filter((d) => d.kind === 'videoinput' && d.deviceId),
    mics: all.filter((d) => d.kind === 'audioinput' && d.deviceId),
  };
}
