// The tcposcrouter dashboard: opens /live, says what it may see (an admin token, a group's name
// and password, or nothing: counts only), and draws each view the router pushes once a second.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  let socket = null;
  let asked = {};

  // The admin token may come in the address's fragment (#token=…), which browsers never send
  // to the server: the console prints the dashboard's address that way.
  function tokenFromAddress() {
    const token = new URLSearchParams(location.hash.slice(1)).get("token");
    if (token) asked = { token };
    return Boolean(token);
  }
  tokenFromAddress();
  window.addEventListener("hashchange", () => {
    if (tokenFromAddress() && socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(asked));
  });

  function duration(seconds) {
    const s = Math.floor(seconds);
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d) return `${d} d ${h} h`;
    if (h) return `${h} h ${m} min`;
    if (m) return `${m} min ${s % 60} s`;
    return `${s} s`;
  }

  function bytes(n) {
    if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB/s`;
    if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB/s`;
    return `${Math.round(n)} B/s`;
  }

  function rate(n) {
    return n >= 100 ? String(Math.round(n)) : n.toFixed(1);
  }

  function chart(canvas, values) {
    const width = canvas.width = canvas.clientWidth * devicePixelRatio || canvas.width;
    const height = canvas.height = canvas.clientHeight * devicePixelRatio || canvas.height;
    const g = canvas.getContext("2d");
    g.clearRect(0, 0, width, height);
    if (!values.length) return;
    const top = Math.max(1, ...values);
    const step = width / 59;
    g.beginPath();
    values.forEach((v, i) => {
      const x = width - (values.length - 1 - i) * step;
      const y = height - 2 - (v / top) * (height - 6);
      i ? g.lineTo(x, y) : g.moveTo(x, y);
    });
    g.strokeStyle = "#2f6fdb";
    g.lineWidth = 2 * devicePixelRatio;
    g.stroke();
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function rttClass(ms) {
    if (ms === null) return "";
    return ms < 50 ? "rtt-good" : ms < 150 ? "rtt-fair" : "rtt-bad";
  }

  function groupPage(page, withAddresses) {
    const box = document.createElement("div");
    box.className = "group";
    box.dataset.group = page.name;
    const title = document.createElement("h3");
    const name = document.createElement("span");
    name.textContent = page.name;
    const info = document.createElement("span");
    info.className = "muted";
    info.textContent = `${page.users.length} users · ${rate(page.messages_per_second)} msg/s · ${bytes(page.bytes_per_second)}`;
    title.append(name, info);
    if (page.pinned) {
      const pin = document.createElement("span");
      pin.className = "muted";
      pin.textContent = page.description ? ` · pinned · ${page.description}` : " · pinned";
      title.append(pin);
    }
    const canvas = document.createElement("canvas");
    const table = document.createElement("table");
    const head = document.createElement("tr");
    for (const h of ["user", "msg/s", "bytes/s", "connections", "round trip"]) {
      const th = document.createElement("th");
      th.textContent = h;
      head.append(th);
    }
    table.append(head);
    for (const user of page.users) {
      const row = document.createElement("tr");
      row.dataset.user = user.name;
      const links = user.connections.map((c) =>
        `${c.transport === "websocket" ? "WebSocket" : c.framing === "slip" ? "TCP SLIP" : "TCP"}` +
        (withAddresses && c.peer ? ` ${c.peer}` : "") + (c.held ? " (dropped, place kept)" : "")).join(", ") ||
        (user.elsewhere ? "on another node" : "");
      const rtts = user.connections.map((c) => c.rtt_ms);
      const worst = rtts.length ? Math.max(...rtts.map((r) => (r === null ? 0 : r))) : null;
      row.append(
        cell(user.name), cell(rate(user.messages_per_second)), cell(bytes(user.bytes_per_second)), cell(links),
        cell(rtts.length ? rtts.map((r) => (r === null ? "–" : `${r.toFixed(1)} ms`)).join(", ") : "–", rttClass(worst)));
      table.append(row);
    }
    box.append(title, canvas, table);
    return { box, draw: () => chart(canvas, page.history) };
  }

  function show(view) {
    $("uptime").textContent = duration(view.uptime_seconds);
    $("connections").textContent = view.connections;
    $("connections-tcp").textContent = view.connections_by_transport.tcp;
    $("connections-websocket").textContent = view.connections_by_transport.websocket;
    $("framings").textContent = Object.entries(view.connections_by_framing).map(([k, v]) => `${k} ${v}`).join(" · ");
    $("groups-count").textContent = view.groups;
    $("users-count").textContent = view.users;
    $("rate").textContent = rate(view.messages_per_second);
    $("bytes-rate").textContent = bytes(view.bytes_per_second);
    chart($("chart"), view.history.map((h) => h[0]));

    const errors = Object.entries(view.recent_errors).sort((a, b) => b[1] - a[1]);
    const body = $("errors").tBodies[0];
    body.replaceChildren(...errors.map(([code, n]) => {
      const row = document.createElement("tr");
      row.dataset.code = code;
      row.append(cell(code), cell(String(n)), cell(`${view.errors_since_start[code] || n} since start`, "muted"));
      return row;
    }));
    $("no-errors").hidden = errors.length > 0;

    const access = $("access");
    access.textContent = { admin: "admin: all names", member: "your group", public: "counts only" }[view.access];
    access.className = `badge ${view.access}`;
    $("names-hidden").hidden = view.access !== "public";
    const pages = view.group_pages.map((p) => groupPage(p, view.access === "admin"));
    $("group-pages").replaceChildren(...pages.map((p) => p.box));
    pages.forEach((p) => p.draw());
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${location.host}${location.pathname.replace(/[^/]*$/, "")}live`);
    socket.onopen = () => {
      $("live").textContent = "live";
      $("live").className = "badge on";
      socket.send(JSON.stringify(asked));
    };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "view") show(message);
      else if (message.type === "access") $("access-error").textContent = message.error || "";
    };
    socket.onclose = () => {
      $("live").textContent = "reconnecting…";
      $("live").className = "badge off";
      setTimeout(connect, 2000);
    };
  }

  $("admin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    asked = { token: $("token").value };
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(asked));
  });
  $("member-form").addEventListener("submit", (event) => {
    event.preventDefault();
    asked = { group: $("member-group").value, password: $("member-password").value };
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(asked));
  });
  connect();
})();
