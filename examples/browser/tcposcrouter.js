// tcposcrouter for browser code: an ES module that Strudel, Hydra or p5.js sketches import from
// the router itself to join a group, send, listen, follow the group's tempo and state, and keep
// their place through a dropped connection (docs/protocol.md §9, §11, §13, §14).
//
//   const { join } = await import("https://router.example.org/client/tcposcrouter.js");
//   const band = await join({ user: "ana", password: "pw", group: "band", groupPassword: "gpw" });
//   band.on("message", (m) => console.log(m.address, m.args));
//   band.send("/note", 60, 0.5);
//   band.beat();  band.bar();  band.nextBar();  band.setTempo(90, band.nextBar());
//   band.setState("/scene", "intro");  band.state.get("/scene");
//
// OSC encoding and decoding is osc.js's, loaded once from the router (vendor/) as a classic
// script: a page whose Content-Security-Policy refuses scripts from the router cannot use this.

const HERE = new URL(".", import.meta.url);
const SESSION_SECONDS = 30; // the place kept after a drop
const ACK_MS = 500; // acknowledgements, and a ping every PING_MS
const PING_MS = 3000;
const CLOCK_REFRESH_MS = 30000;
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 10000;
const NTP_EPOCH = 2208988800; // seconds from 1900 to 1970

let oscLoaded = null;

function loadOsc() {
  if (globalThis.osc && globalThis.osc.writePacket) return Promise.resolve(globalThis.osc);
  if (!oscLoaded) {
    oscLoaded = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = new URL("vendor/osc-browser.min.js", HERE).href;
      script.onload = () => resolve(globalThis.osc);
      script.onerror = () => reject(new Error(`cannot load ${script.src}`));
      document.head.appendChild(script);
    });
  }
  return oscLoaded;
}

function defaultUrl() {
  const scheme = HERE.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${HERE.host}/osc`;
}

// An argument: a number (an integer is i, else f), a string (s), a boolean (T/F), null (N), a
// Uint8Array (b), or {type, value} for any OSC type osc.js writes ("d", "h", "t" …).
function toArg(value) {
  if (value !== null && typeof value === "object" && "type" in value) return value;
  if (typeof value === "number") return { type: Number.isInteger(value) ? "i" : "f", value };
  if (typeof value === "string") return { type: "s", value };
  if (typeof value === "boolean") return { type: value ? "T" : "F", value };
  if (value === null || value === undefined) return { type: "N", value: null };
  if (value instanceof Uint8Array) return { type: "b", value };
  throw new TypeError(`cannot send ${value} as an OSC argument`);
}

function timeTagSeconds(tag) {
  return tag.raw[0] - NTP_EPOCH + tag.raw[1] / 4294967296;
}

class Group {
  constructor(osc, options) {
    this.osc = osc;
    this.url = options.url || defaultUrl();
    this.user = options.user;
    this.groupName = options.group;
    this.credentials = [options.user, options.password ?? "nil", options.group,
      options.groupPassword ?? "oscrouter"];
    this.sessionSeconds = options.session ?? SESSION_SECONDS;
    this.users = [];
    this.state = new Map(); // the group's state, address → {address, args}
    this.lines = []; // the tempo lines told, by t0; the first in force longest
    this.offset = 0; // seconds to add to this machine's clock for the router's
    this.roundTrip = Infinity;
    this.connected = false;
    this.resumed = false;
    this.token = "";
    this.received = 0; // numbered packets counted since the session began
    this.acked = 0;
    this.numbering = false;
    this.following = false;
    this.listeners = new Map();
    this.closing = false;
    this.samples = [];
  }

  on(event, listener) {
    if (!this.listeners.has(event)) this.listeners.set(event, []);
    this.listeners.get(event).push(listener);
    return this;
  }

  emit(event, value) {
    for (const listener of this.listeners.get(event) || []) listener(value);
  }

  // -- the connection ----------------------------------------------------------------------

  connect() {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(this.url);
      socket.binaryType = "arraybuffer";
      this.socket = socket;
      let settled = false;
      const settle = (error) => {
        if (settled) return;
        settled = true;
        if (error) reject(error); else resolve(this);
      };
      this.joined = settle;
      socket.onopen = () => {
        if (this.token) {
          this.numbering = true;
          this.raw("/oscrouter/session/resume", "s", this.groupName, "s", this.token, "i",
            this.received);
        } else {
          this.register();
        }
      };
      socket.onmessage = (event) => this.receive(new Uint8Array(event.data));
      socket.onclose = () => {
        const was = this.connected;
        this.connected = false;
        this.following = false;
        settle(new Error(`the connection to ${this.url} closed before the group was joined`));
        if (!this.closing && was) this.reconnect(BACKOFF_FIRST_MS);
      };
    });
  }

  register() {
    const [user, password, group, groupPassword] = this.credentials;
    this.numbering = false;
    this.raw("/oscrouter/register", "s", user, "s", password, "s", group, "s", groupPassword,
      "i", 1 + Math.floor(Math.random() * 2147483646));
  }

  reconnect(wait) {
    this.emit("dropped", null);
    setTimeout(() => {
      if (this.closing) return;
      this.connect().then(
        () => this.emit("reconnected", { resumed: this.resumed }),
        () => this.reconnect(Math.min(BACKOFF_MAX_MS, wait * 2)),
      );
    }, wait);
  }

  ready() {
    this.connected = true;
    if (!this.timer) {
      let ticks = 0;
      this.timer = setInterval(() => {
        if (!this.connected) return;
        ticks += 1;
        if (this.numbering && this.received !== this.acked) this.ack();
        if ((ticks * ACK_MS) % PING_MS === 0) this.raw("/oscrouter/ping", "s", this.user);
        if ((ticks * ACK_MS) % CLOCK_REFRESH_MS === 0) this.syncTime();
      }, ACK_MS);
    }
    this.joined(null);
  }

  ack() {
    this.acked = this.received;
    this.raw("/oscrouter/session/ack", "i", this.received);
  }

  close() {
    this.closing = true;
    clearInterval(this.timer);
    if (this.connected && this.sessionAsked) this.raw("/oscrouter/session", "i", 0); // leave now
    if (this.socket) this.socket.close();
  }

  // -- sending -----------------------------------------------------------------------------

  raw(address, ...typed) {
    const args = [];
    for (let i = 0; i < typed.length; i += 2) args.push({ type: typed[i], value: typed[i + 1] });
    this.sendPacket({ address, args });
  }

  sendPacket(packet) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(this.osc.writePacket(packet, { metadata: true }));
    }
  }

  send(address, ...args) {
    this.sendPacket({ address, args: args.map(toArg) });
  }

  sendTo(user, address, ...args) {
    this.sendPacket({ address: "/oscrouter/private",
      args: [toArg(user), toArg(address), ...args.map(toArg)] });
  }

  setState(address, ...args) {
    const typed = args.map(toArg);
    this.sendPacket({ address: "/oscrouter/state", args: [toArg(address), ...typed] });
    this.state.set(address, { address, args: typed });
  }

  clearState(address) {
    this.send("/oscrouter/state/clear", address);
    this.state.delete(address);
  }

  setTempo(bpm, atBeat, quantum) {
    const args = [{ type: "d", value: bpm }];
    if (atBeat !== undefined && atBeat !== null) {
      args.push({ type: "d", value: atBeat });
      if (quantum) args.push({ type: "i", value: quantum });
    }
    this.sendPacket({ address: "/oscrouter/tempo/set", args });
  }

  setPlaying(playing, atBeat) {
    const args = [{ type: "i", value: playing ? 1 : 0 }];
    if (atBeat !== undefined && atBeat !== null) args.push({ type: "d", value: atBeat });
    this.sendPacket({ address: "/oscrouter/tempo/play", args });
  }

  // -- the group's clock (the router's time, docs/protocol.md §9 and §11) --------------------

  syncTime(exchanges = 8) {
    this.samples = [];
    for (let i = 0; i < exchanges; i++) {
      setTimeout(() => {
        const now = Date.now() / 1000;
        this.sendPacket({ address: "/oscrouter/time",
          args: [{ type: "t", value: { raw: [Math.floor(now) + NTP_EPOCH,
            Math.round((now % 1) * 4294967296)] } }] });
      }, i * 20);
    }
  }

  timeReply(args, arrived) {
    const [sent, received, answered] = args.map((a) => timeTagSeconds(a.value));
    const roundTrip = (arrived - sent) - (answered - received);
    const offset = ((received - sent) + (answered - arrived)) / 2;
    this.samples.push({ roundTrip, offset });
    const best = this.samples.reduce((a, b) => (b.roundTrip < a.roundTrip ? b : a));
    this.offset = best.offset;
    this.roundTrip = best.roundTrip;
  }

  routerTime(local = Date.now() / 1000) {
    return local + this.offset;
  }

  lineAt(local = Date.now() / 1000) {
    if (!this.lines.length) throw new Error("the router has not told the tempo yet");
    const moment = this.routerTime(local);
    let current = this.lines[0];
    for (const line of this.lines.slice(1)) if (line.t0 <= moment) current = line;
    return current;
  }

  get tempo() {
    return this.lines.length ? this.lineAt() : null;
  }

  beat(local = Date.now() / 1000) {
    const line = this.lineAt(local);
    return line.beat0 + (this.routerTime(local) - line.t0) * line.bpm / 60;
  }

  bar(local = Date.now() / 1000) {
    const line = this.lineAt(local);
    const beat = this.beat(local);
    return { bar: Math.floor(beat / line.quantum) + 1,
      beat: Math.floor(beat % line.quantum) + 1, quantum: line.quantum };
  }

  nextBar(local = Date.now() / 1000) {
    const line = this.lineAt(local);
    return (Math.floor(this.beat(local) / line.quantum + 1e-9) + 1) * line.quantum;
  }

  timeOf(beat) {
    let line = this.lines[0];
    for (const later of this.lines.slice(1)) if (later.beat0 <= beat) line = later;
    return line.t0 + (beat - line.beat0) * 60 / line.bpm - this.offset;
  }

  // -- receiving ---------------------------------------------------------------------------

  receive(bytes) {
    const arrived = Date.now() / 1000;
    let packet;
    try {
      packet = this.osc.readPacket(bytes, { metadata: true });
    } catch (error) {
      return; // the router sends only OSC
    }
    const address = packet.address || "";
    if (address.startsWith("/oscrouter/session")) {
      this.sessionReply(address, packet.args);
      return;
    }
    if (this.numbering) this.received += 1;
    const args = packet.args || [];
    if (address === `/oscrouter/register/${this.user}` || address.startsWith(
      `/oscrouter/register/${this.user}/`)) {
      this.resumed = false; // registered (anew, where a resume could not be done)
      this.ready();
      this.syncTime();
      if (this.sessionSeconds) {
        this.raw("/oscrouter/session", "i", this.sessionSeconds);
        this.sessionAsked = true; // (its answer may still be on its way at a close)
      }
      return;
    }
    if (address === "/oscrouter/register") return;
    if (address === "/oscrouter/userlist") {
      this.users = args.map((a) => a.value);
      this.emit("users", this.users.slice());
    } else if (address === "/oscrouter/error") {
      const [code, detail] = args.map((a) => a.value);
      if (code === "resume_expired") {
        this.token = "";
        this.register(); // on the same connection
      } else {
        this.emit("error", { code, detail });
      }
    } else if (address === "/oscrouter/time") {
      this.timeReply(args, arrived);
    } else if (address === "/oscrouter/tempo" && args.length === 5) {
      const line = { t0: timeTagSeconds(args[0].value), beat0: args[1].value, bpm: args[2].value,
        quantum: args[3].value, playing: args[4].value };
      this.lines = [...this.lines.filter((old) => old.t0 < line.t0).slice(-1), line];
      this.emit("tempo", line);
    } else if (address === "/oscrouter/state/begin") {
      this.stateFrame = (this.stateFrame || 0) + 1;
      this.inState = true;
      this.state.clear();
      if (!this.following) { // hear the changes wrapped, and the whole state again
        this.following = true;
        this.raw("/oscrouter/state/follow", "i", 1);
        this.raw("/oscrouter/state");
      }
    } else if (address === "/oscrouter/state/end") {
      this.inState = false;
      this.emit("state", this.state);
    } else if (address === "/oscrouter/state" && args.length) {
      const message = { address: args[0].value, args: args.slice(1) };
      this.state.set(message.address, message);
      if (!this.inState) this.emit("message", message);
    } else if (address === "/oscrouter/state/clear" && args.length) {
      this.state.delete(args[0].value);
      this.emit("state", this.state);
    } else {
      if (this.inState && !packet.packets) this.state.set(address, packet);
      this.emit("message", packet);
    }
  }

  sessionReply(address, args) {
    if (address === "/oscrouter/session" && args.length === 2) {
      const [token, seconds] = args.map((a) => a.value);
      if (token && !this.numbering) {
        this.numbering = true;
        this.received = this.acked = 0;
      }
      this.token = token;
      this.seconds = seconds;
    } else if (address === "/oscrouter/session/resumed") {
      this.resumed = true;
      this.ready();
      this.syncTime();
    }
  }
}

// Join a group: {url (default: this router's /osc), user, password, group, groupPassword,
// session (seconds the place is kept after a drop; 0: none)}. Resolves once registered.
export async function join(options) {
  const osc = await loadOsc();
  const group = new Group(osc, options);
  await group.connect();
  return group;
}
