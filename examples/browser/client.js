// The tcposcrouter browser client: joins a group over OSC-over-WebSocket (/osc), shows the user
// list, the group's beat and bar (its tempo through the router's clock, docs/protocol.md §9,
// §11), its state for late joiners (§13) and everything that arrives, and sends messages and
// bundles with typed arguments.
// OSC encoding and decoding is osc.js's (vendor/osc-browser.min.js); this file is the page.
"use strict";

(function () {
  // OSC strings are bytes up to a NUL, with no encoding: SuperCollider and Pd send UTF-8, osc-js
  // (Strudel) one byte per character below 256, which is Latin-1. osc.js reads every string with
  // the TextDecoder it keeps at osc.TextDecoder; this one reads UTF-8 where the bytes are UTF-8
  // and Latin-1 otherwise, as tcposcrouter's Python client does, so "hello ü" from osc-js shows
  // as typed instead of with a replacement character (docs/protocol.md §2).
  // (Not TextDecoder("latin1"): browsers read that label as windows-1252.)
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  osc.TextDecoder = {
    decode(bytes) {
      try {
        return utf8.decode(bytes);
      } catch (error) {
        // osc.js hands over an Int8Array: bytes above 127 come negative.
        return Array.from(bytes, (byte) => String.fromCharCode(byte & 0xff)).join("");
      }
    },
  };

  const $ = (id) => document.getElementById(id);
  const LOG_LIMIT = 500; // lines kept in the page: enough to read back, not enough to slow it
  let port = null;
  let me = null;
  let joined = false;

  function defaultServer() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return location.host ? `${scheme}//${location.host}/osc` : "ws://127.0.0.1:55557/osc";
  }

  function setStatus(text, kind) {
    const status = $("status");
    status.textContent = text;
    status.className = `status ${kind}`;
  }

  // -- showing what arrives -----------------------------------------------------------------

  function hex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function showArg(arg) {
    const v = arg.value;
    switch (arg.type) {
      case "s": case "S": return JSON.stringify(v);
      case "c": return `c:${JSON.stringify(v)}`;
      case "b": return `b:${hex(v)}`;
      case "m": return `m:${hex(v)}`;
      case "r": return `r:${[v.r, v.g, v.b, v.a].map((c) => c.toString(16).padStart(2, "0")).join("")}`;
      case "t": return `t:${showTimeTag(v)}`;
      case "T": case "F": case "N": case "I": return arg.type;
      case "h": return `h:${typeof v === "object" && v !== null && "low" in v ? BigInt.asIntN(64, (BigInt(v.high) << 32n) | BigInt(v.low >>> 0)) : v}`;
      case "d": return `d:${v}`;
      case "f": return Number.isInteger(v) ? `f:${v}` : String(v);
      default: return String(v);
    }
  }

  function showTimeTag(tag) {
    if (tag.raw && tag.raw[0] === 0 && tag.raw[1] === 1) return "immediately";
    return new Date(tag.native).toISOString().replace("T", " ").replace("Z", "");
  }

  function showPacket(packet, depth) {
    const pad = "  ".repeat(depth);
    if (packet.packets) {
      const inner = packet.packets.map((p) => showPacket(p, depth + 1)).join("\n");
      return `${pad}#bundle ${showTimeTag(packet.timeTag)}\n${inner}`;
    }
    if (!packet.args.length) return `${pad}${packet.address}`;
    const tags = "," + packet.args.map((a) => a.type).join("");
    return `${pad}${packet.address} ${tags} ${packet.args.map(showArg).join(" ")}`;
  }

  function log(text, kind) {
    const item = document.createElement("li");
    const time = document.createElement("span");
    time.className = "time";
    time.textContent = new Date().toLocaleTimeString() + " ";
    const body = document.createElement("span");
    body.className = kind || "";
    body.textContent = text;
    item.append(time, body);
    const list = $("log");
    list.prepend(item);
    while (list.children.length > LOG_LIMIT) list.lastChild.remove();
  }

  function showUsers(names) {
    const list = $("users");
    list.replaceChildren(...names.map((name) => {
      const item = document.createElement("li");
      item.textContent = name;
      if (name === me) item.className = "me";
      return item;
    }));
    const target = $("target");
    const chosen = target.value;
    target.replaceChildren(new Option("everyone", ""),
      ...names.filter((n) => n !== me).map((n) => new Option(n, n)));
    if (names.includes(chosen)) target.value = chosen;
  }

  // -- the group's beat and state ----------------------------------------------------------

  const NTP_EPOCH = 2208988800;
  let lines = []; // tempo lines told, by t0: the first in force until the next one's t0
  let offset = 0; // seconds to add to this machine's clock for the router's
  let bestTrip = Infinity;
  let state = new Map(); // address → packet, the group's state
  let inStateFrame = false;
  let following = false;

  function seconds(tag) {
    return tag.raw[0] - NTP_EPOCH + tag.raw[1] / 4294967296;
  }

  function askTime() {
    for (let i = 0; i < 8; i++) {
      setTimeout(() => {
        if (port && joined) port.send({ address: "/oscrouter/time", args: [{ type: "t", value: osc.timeTag(0) }] });
      }, i * 25);
    }
  }

  function timeReply(args, arrived) {
    const [sent, received, answered] = args.map((a) => seconds(a.value));
    const trip = (arrived - sent) - (answered - received);
    if (trip < bestTrip) { // the quickest exchange is the truest (NTP's rule)
      bestTrip = trip;
      offset = ((received - sent) + (answered - arrived)) / 2;
    }
  }

  function showBeat() {
    const panel = $("beat");
    if (!lines.length) {
      panel.textContent = "no tempo yet";
      return;
    }
    const now = Date.now() / 1000 + offset;
    let line = lines[0];
    for (const later of lines.slice(1)) if (later.t0 <= now) line = later;
    const beat = line.beat0 + (now - line.t0) * line.bpm / 60;
    const inBar = Math.floor(((beat % line.quantum) + line.quantum) % line.quantum);
    const dots = Array.from({ length: line.quantum }, (_, i) => {
      const dot = document.createElement("span");
      dot.className = i === inBar ? "dot on" : "dot";
      return dot;
    });
    const text = document.createElement("span");
    text.className = "bar";
    text.textContent = ` bar ${Math.floor(beat / line.quantum) + 1} · beat ${inBar + 1} · ${line.bpm.toFixed(1)} bpm · ${line.playing ? "playing" : "stopped"}`;
    panel.replaceChildren(...dots, text);
  }

  function showState() {
    $("state").replaceChildren(...[...state.values()].map((packet) => {
      const item = document.createElement("li");
      item.textContent = showPacket(packet, 0);
      return item;
    }));
  }

  function groupReply(packet, address) {
    const args = packet.args;
    if (address === "/oscrouter/time" && args.length === 3) {
      timeReply(args, Date.now() / 1000);
    } else if (address === "/oscrouter/tempo" && args.length === 5) {
      const line = { t0: seconds(args[0].value), beat0: args[1].value, bpm: args[2].value, quantum: args[3].value, playing: args[4].value };
      lines = [...lines.filter((old) => old.t0 < line.t0).slice(-1), line];
      log(showPacket(packet, 0), "router");
    } else if (address === "/oscrouter/state/begin") {
      inStateFrame = true;
      state = new Map();
    } else if (address === "/oscrouter/state/end") {
      inStateFrame = false;
      showState();
      if (!following) { // from now on hear the others' changes wrapped, and clears
        following = true;
        port.send({ address: "/oscrouter/state/follow", args: [{ type: "i", value: 1 }] });
        port.send({ address: "/oscrouter/state", args: [] }); // the whole state again, wrapped
      }
    } else if (address === "/oscrouter/state" && args.length) {
      const value = { address: args[0].value, args: args.slice(1) };
      state.set(value.address, value);
      showState();
      if (!inStateFrame) log(showPacket(value, 0), "");
    } else if (address === "/oscrouter/state/clear" && args.length) {
      state.delete(args[0].value);
      showState();
    } else {
      return false;
    }
    return true;
  }

  setInterval(showBeat, 50);

  function received(packet) {
    const address = packet.address || "";
    if (groupReply(packet, address)) return;
    if (inStateFrame && !address.startsWith("/oscrouter/") && !packet.packets) {
      state.set(address, packet); // the state told on joining, heard as the messages they are
    }
    if (address === "/oscrouter/userlist") {
      showUsers(packet.args.map((a) => a.value));
      log(showPacket(packet, 0), "router");
    } else if (address.startsWith("/oscrouter/register/")) {
      joined = true;
      askTime();
      setStatus(`joined ${$("group").value} as ${me}`, "joined");
      $("send-button").disabled = false;
      log(showPacket(packet, 0), "router");
    } else if (address === "/oscrouter/error") {
      const [code, text] = packet.args.map((a) => a.value);
      if (!joined) setStatus(`refused: ${code}`, "error");
      log(`error ${code}: ${text}`, "error");
    } else if (address === "/oscrouter/private") {
      log(`private from ${packet.args[0].value}: ${showPacket({ address: packet.args[1].value, args: packet.args.slice(2) }, 0)}`, "private");
    } else if (address.startsWith("/oscrouter/")) {
      log(showPacket(packet, 0), "router");
    } else {
      log(showPacket(packet, 0), "");
    }
  }

  // -- writing messages -----------------------------------------------------------------------

  function tokens(line) {
    const out = [];
    const re = /\s*(?:([A-Za-z]:)?"((?:[^"\\]|\\.)*)"|(\S+))/g;
    let m;
    while ((m = re.exec(line)) !== null) {
      if (m[2] !== undefined) out.push({ prefix: m[1] || "s:", text: m[2].replace(/\\(.)/g, "$1"), quoted: true });
      else if (m[3] !== undefined) out.push({ prefix: null, text: m[3], quoted: false });
    }
    return out;
  }

  function bytesOf(hexText) {
    if (!/^([0-9a-fA-F]{2})*$/.test(hexText)) throw new Error(`not hex bytes: ${hexText}`);
    return new Uint8Array(hexText.match(/../g) || []);
  }

  function typed(type, text) {
    switch (type) {
      case "i": case "f": case "d": {
        const n = Number(text);
        if (text === "" || Number.isNaN(n)) throw new Error(`not a number: ${text}`);
        if (type === "i" && !Number.isInteger(n)) throw new Error(`not an integer: ${text}`);
        return { type, value: n };
      }
      case "h": return { type, value: Number(BigInt(text)) };
      case "s": case "S": return { type, value: text };
      case "c": return { type, value: text.charAt(0) };
      case "b": case "m": return { type, value: bytesOf(text) };
      case "r": {
        const b = bytesOf(text);
        if (b.length !== 4) throw new Error(`a colour is 4 bytes: ${text}`);
        return { type, value: { r: b[0], g: b[1], b: b[2], a: b[3] } };
      }
      case "t": return { type, value: osc.timeTag(Number(text)) };
      default: throw new Error(`unknown type ${type}:`);
    }
  }

  function argument(token) {
    if (token.quoted) return typed(token.prefix[0], token.text);
    const text = token.text;
    const colon = /^([A-Za-z]):(.*)$/.exec(text);
    if (colon) return typed(colon[1], colon[2]);
    if (["T", "F", "N", "I"].includes(text)) return { type: text, value: text === "T" ? true : text === "F" ? false : null };
    if (/^[-+]?\d+$/.test(text)) return typed("i", text);
    if (/^[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$/.test(text)) return typed("f", text);
    return { type: "s", value: text };
  }

  function message(line) {
    const parts = tokens(line);
    if (!parts.length || !parts[0].text.startsWith("/")) throw new Error(`an address starts with "/": ${line}`);
    return { address: parts[0].text, args: parts.slice(1).map(argument) };
  }

  function privately(target, msg) {
    return { address: "/oscrouter/private", args: [{ type: "s", value: target }, { type: "s", value: msg.address }, ...msg.args] };
  }

  function send(event) {
    event.preventDefault();
    if (!port || !joined) return;
    const lines = $("message").value.split("\n").map((l) => l.trim()).filter(Boolean);
    let packets;
    try {
      packets = lines.map(message);
    } catch (error) {
      log(`not sent: ${error.message}`, "error");
      return;
    }
    const target = $("target").value;
    if (target) packets = packets.map((p) => privately(target, p));
    if ($("as-bundle").checked) {
      const delay = Number($("bundle-delay").value) || 0;
      const timeTag = delay > 0 ? osc.timeTag(delay) : { raw: [0, 1] };
      packets = [{ timeTag, packets }];
    }
    for (const packet of packets) {
      port.send(packet);
      log(`sent ${showPacket(packet, 0)}`, "sent");
    }
  }

  // -- joining --------------------------------------------------------------------------------

  function join(event) {
    event.preventDefault();
    leave();
    me = $("user").value.trim();
    const url = $("server").value.trim();
    setStatus(`connecting to ${url}`, "busy");
    port = new osc.WebSocketPort({ url, metadata: true });
    port.on("ready", () => {
      setStatus("registering", "busy");
      port.send({
        address: "/oscrouter/register",
        args: [
          { type: "s", value: me }, { type: "s", value: $("password").value },
          { type: "s", value: $("group").value.trim() }, { type: "s", value: $("group-password").value },
          { type: "i", value: Math.floor(Math.random() * 2147483647) },
        ],
      });
    });
    port.on("osc", received);
    port.on("error", (error) => log(`error: ${error.message || error}`, "error"));
    port.on("close", () => {
      if (port === null) return;
      joined = false;
      $("send-button").disabled = true;
      if (!$("status").classList.contains("error")) setStatus("disconnected", "idle");
      showUsers([]);
    });
    port.open();
    $("leave-button").disabled = false;
  }

  function leave() {
    if (port) {
      const old = port;
      port = null;
      old.close();
    }
    joined = false;
    lines = [];
    state = new Map();
    following = false;
    bestTrip = Infinity;
    showState();
    $("send-button").disabled = true;
    $("leave-button").disabled = true;
    showUsers([]);
    setStatus("not connected", "idle");
  }

  $("server").value = new URLSearchParams(location.search).get("server") || defaultServer();
  $("join").addEventListener("submit", join);
  $("send").addEventListener("submit", send);
  $("leave-button").addEventListener("click", leave);
  $("clear").addEventListener("click", () => $("log").replaceChildren());
})();
