// An in-memory stand-in for the server's relay, for key manager tests: delivers each relay blob
// to its target (or everyone else) with `from` set, like the room core does, and counts them.

import { KeyManager } from '../../web/e2ee/keys.js';

export class Net {
  constructor(room = 'standup') {
    this.room = room;
    /** @type {Map<string, KeyManager>} */
    this.members = new Map();
    /** @type {Map<string, {type: string, detail: any}[]>} */
    this.events = new Map();
    this.sent = 0;
    this.delivered = 0;
    /** Every blob delivered, as the server would see it. */
    /** @type {string[]} */
    this.wire = [];
    /** Optional hook to tamper with deliveries: return null to drop, or a new data string. */
    /** @type {null | ((from: string, to: string, data: string) => string | null)} */
    this.tamper = null;
  }

  /**
   * @param {string} id
   * @param {{secret?: string, name?: string}} [opts]
   */
  async join(id, { secret = 'correct-horse-battery-staple', name = id } = {}) {
    /** @type {{type: string, detail: any}[]} */
    const log = [];
    this.events.set(id, log);
    const km = new KeyManager({
      room: this.room,
      secret,
      selfId: id,
      name,
      send: (to, data) => this.relay(id, to, data),
      emit: (type, detail) => log.push({ type, detail }),
    });
    this.members.set(id, km);
    await km.start();
    await this.settle();
    return km;
  }

  /** @param {string} id */
  async leave(id) {
    const km = this.members.get(id);
    km?.stop();
    this.members.delete(id);
    for (const other of this.members.values()) other.left(id);
    await this.settle();
  }

  /**
   * @param {string} from
   * @param {string|null} to
   * @param {string} data
   */
  relay(from, to, data) {
    this.sent++;
    const targets = to === null ? [...this.members.keys()].filter((id) => id !== from) : [to];
    for (const t of targets) {
      const km = this.members.get(t);
      if (!km) continue;
      const d = this.tamper ? this.tamper(from, t, data) : data;
      if (d === null) continue;
      this.delivered++;
      this.wire.push(d);
      km.receive(from, d);
    }
  }

  /** Wait until no member has work queued. */
  async settle() {
    for (;;) {
      const before = this.delivered;
      await Promise.all([...this.members.values()].map((m) => m.queue));
      await new Promise((r) => setImmediate(r));
      if (this.delivered === before) {
        await Promise.all([...this.members.values()].map((m) => m.queue));
        if (this.delivered === before) return;
      }
    }
  }

  /** @param {string} id @param {string} type */
  eventsOf(id, type) {
    return (this.events.get(id) ?? []).filter((e) => e.type === type).map((e) => e.detail);
  }
}
