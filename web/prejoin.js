// Pre-join page: camera preview, microphone/camera toggles and device choice, name and (optional)
// meeting password. Also the local media helpers the meeting page shares.

import { getLocalMedia, getCameraTrack, getMicTrack, listDevices, MESSAGES } from './media.js';
import { ICONS } from './icons.js';
import { toast } from './dom.js';
import { ui, me, setState, NAME_KEY } from './page.js';

/** @param {boolean} on */
export function setToggle(/** @type {HTMLButtonElement} */ btn, on, /** @type {'mic'|'cam'} */ kind, inMeeting = false) {
  btn.setAttribute('aria-pressed', String(on));
  btn.classList.toggle('off', !on);
  btn.innerHTML = kind === 'mic' ? (on ? ICONS.mic : ICONS.micOff) : on ? ICONS.cam : ICONS.camOff;
  const label =
    kind === 'mic'
      ? inMeeting ? (on ? 'Mute microphone' : 'Unmute microphone') : on ? 'Microphone on' : 'Microphone off'
      : inMeeting ? (on ? 'Turn camera off' : 'Turn camera on') : on ? 'Camera on' : 'Camera off';
  btn.setAttribute('aria-label', label);
  btn.title = label;
}

function updatePreview() {
  const v = me.camOn ? me.video : null;
  ui.preview.srcObject = v ? new MediaStream([v]) : null;
  ui.previewOff.hidden = !!v;
  ui.previewOff.textContent = me.hasCam ? 'Camera is off' : 'No camera';
  if (v) ui.preview.play().catch(() => {});
  setToggle(ui.preMic, me.micOn && !!me.audio, 'mic');
  setToggle(ui.preCam, me.camOn && !!me.video, 'cam');
}

function showMediaMessage() {
  ui.mediaMessage.textContent = me.mediaMessage ?? '';
  ui.mediaMessage.hidden = !me.mediaMessage;
}

/** Acquire local media according to me.micOn / me.camOn. */
export async function acquireMedia() {
  const res = await getLocalMedia({
    audio: true,
    video: me.camOn,
    audioDevice: me.audioDevice || undefined,
    videoDevice: me.videoDevice || undefined,
  });
  me.audio = res.audio;
  me.video = res.video;
  me.hasMic = me.hasMic || !!res.audio;
  me.hasCam = me.hasCam || !!res.video;
  if (!me.camOn && res.failure === null) me.hasCam = me.hasCam || (await listDevices()).cameras.length > 0;
  me.mediaMessage = res.message;
  if (me.audio) me.audio.enabled = me.micOn;
  if (!me.audio) me.micOn = false;
  if (!me.video && me.camOn) me.camOn = false;
}

async function fillDeviceSelects() {
  const { cameras, mics } = await listDevices();
  /**
   * @param {HTMLSelectElement} sel
   * @param {MediaDeviceInfo[]} devs
   * @param {MediaStreamTrack|null} track
   * @param {string} fallback
   */
  const fill = (sel, devs, track, fallback) => {
    sel.replaceChildren();
    const current = track?.getSettings().deviceId;
    devs.forEach((d, i) => {
      const o = document.createElement('option');
      o.value = d.deviceId;
      o.textContent = d.label || `${fallback} ${i + 1}`;
      if (d.deviceId === current) o.selected = true;
      sel.append(o);
    });
    sel.disabled = devs.length === 0;
    if (devs.length === 0) {
      const o = document.createElement('option');
      o.textContent = `No ${fallback.toLowerCase()} available`;
      sel.append(o);
    }
  };
  fill(ui.camSelect, cameras, me.video, 'Camera');
  fill(ui.micSelect, mics, me.audio, 'Microphone');
}

export function stopLocalMedia() {
  me.audio?.stop();
  me.video?.stop();
  me.audio = null;
  me.video = null;
  ui.preview.srcObject = null;
}

/**
 * @param {{passwordError?: string}} [opts] show this message at the password field and focus it
 */
export async function showPrejoin(opts = {}) {
  setState('prejoin');
  ui.prejoinRoom.textContent = me.room;
  ui.nameInput.value = me.name;
  ui.passwordError.textContent = opts.passwordError ?? '';
  ui.passwordError.hidden = !opts.passwordError;
  ui.passwordInput.setAttribute('aria-invalid', String(!!opts.passwordError));
  const focus = () => {
    if (opts.passwordError) {
      ui.passwordInput.focus();
      ui.passwordInput.select();
    } else if (!ui.nameInput.value) ui.nameInput.focus();
    else ui.joinBtn.focus();
  };
  focus();
  updatePreview();
  await acquireMedia();
  updatePreview();
  showMediaMessage();
  await fillDeviceSelects();
  // Focus again only if the user has not moved on meanwhile.
  if (document.activeElement === document.body || document.activeElement === null) focus();
}

/** @param {() => void} onJoin called when the form is submitted with a name */
export function wirePrejoin(onJoin) {
  ui.preMic.addEventListener('click', () => {
    if (!me.audio) {
      toast(me.mediaMessage ?? 'No microphone available.', { kind: 'warning' });
      return;
    }
    me.micOn = !me.micOn;
    me.audio.enabled = me.micOn;
    updatePreview();
  });
  ui.preCam.addEventListener('click', async () => {
    if (me.camOn) {
      me.camOn = false;
      me.video?.stop();
      me.video = null;
    } else {
      try {
        me.video = await getCameraTrack(me.videoDevice || undefined);
        me.camOn = true;
        me.hasCam = true;
      } catch {
        toast(me.mediaMessage ?? MESSAGES.no_camera, { kind: 'warning' });
      }
    }
    updatePreview();
  });
  ui.camSelect.addEventListener('change', async () => {
    me.videoDevice = ui.camSelect.value;
    if (!me.camOn) return;
    try {
      const t = await getCameraTrack(me.videoDevice);
      me.video?.stop();
      me.video = t;
    } catch {
      toast('That camera could not be started.', { kind: 'warning' });
    }
    updatePreview();
  });
  ui.micSelect.addEventListener('change', async () => {
    me.audioDevice = ui.micSelect.value;
    try {
      const t = await getMicTrack(me.audioDevice);
      me.audio?.stop();
      me.audio = t;
      t.enabled = me.micOn;
    } catch {
      toast('That microphone could not be started.', { kind: 'warning' });
    }
  });
  ui.prejoinForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const name = ui.nameInput.value.trim();
    if (!name) {
      ui.nameInput.focus();
      return;
    }
    ui.nameError.hidden = true;
    ui.passwordError.hidden = true;
    me.name = name;
    me.password = ui.passwordInput.value;
    try {
      localStorage.setItem(NAME_KEY, name);
    } catch {
      /* storage may be unavailable */
    }
    onJoin();
  });
}

