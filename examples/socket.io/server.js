// A small Socket.IO chat server (the Node `socket.io` package, backed by Postgres)
// that the example suite in this folder runs against. Configured by the environment:
//   BIND          host:port to listen on (default 127.0.0.1:18851)
//   DATABASE_URL  Postgres to store messages in (table sio_example_messages)
//
// Namespace `/`:
//   on connect            emits `welcome` {id}
//   join(room, ack)       joins the room; ack {joined: room}
//   chat(room, text, ack) stores a row, emits `message` {id, room, text, count} to the
//                         room; ack {ok: true, id, count}
//   confirm_me(order)     emits `confirm` {order} asking for an acknowledgement, then
//                         `confirmed` with the client's answer
//   upload(name, bytes, ack)  emits `download` {name} + the bytes reversed; ack {name,
//                         size} + the bytes reversed
//   kick()                disconnects the socket (the client sees `io server disconnect`)
// Namespace `/admin` needs `auth: {token: "let-me-in"}`; on connect emits `hello`
// {role: "admin"}; whoami(ack) answers with the auth payload.
// Pings every second (pingTimeout 1 s): a client that does not answer is dropped.
// GET /healthz answers once the table exists.
"use strict";

const http = require("node:http");
const { randomUUID } = require("node:crypto");
const { Server } = require("socket.io");
const { Pool } = require("pg");

const [host, port] = (process.env.BIND || "127.0.0.1:18851").split(":");
const pool = new Pool({ connectionString: process.env.DATABASE_URL });
let ready = false;

const server = http.createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(ready ? 200 : 503).end(ready ? "ok" : "starting");
    return;
  }
  res.writeHead(404).end();
});
const io = new Server(server, { pingInterval: 1000, pingTimeout: 1000 });

// Call `ack` when the client asked for an acknowledgement.
function answer(ack, ...args) {
  if (typeof ack === "function") ack(...args);
}

io.on("connection", (socket) => {
  socket.emit("welcome", { id: socket.id });
  socket.on("join", (room, ack) => {
    socket.join(room);
    answer(ack, { joined: room });
  });
  socket.on("chat", async (room, text, ack) => {
    try {
      const id = `msg_${randomUUID()}`;
      await pool.query(
        "INSERT INTO sio_example_messages (id, room, text) VALUES ($1, $2, $3)",
        [id, room, text],
      );
      const { rows } = await pool.query(
        "SELECT count(*)::int AS count FROM sio_example_messages WHERE room = $1",
        [room],
      );
      const count = rows[0].count;
      io.to(room).emit("message", { id, room, text, count });
      answer(ack, { ok: true, id, count });
    } catch (error) {
      answer(ack, { ok: false, error: String(error) });
    }
  });
  socket.on("confirm_me", async (order) => {
    try {
      const reply = await socket.timeout(2000).emitWithAck("confirm", { order });
      socket.emit("confirmed", reply);
    } catch (error) {
      socket.emit("confirmed", { error: String(error) });
    }
  });
  socket.on("upload", (name, bytes, ack) => {
    const reversed = Buffer.from(bytes).reverse();
    socket.emit("download", { name }, reversed);
    answer(ack, { name, size: bytes.length }, reversed);
  });
  socket.on("kick", () => socket.disconnect(true));
});

const admin = io.of("/admin");
admin.use((socket, next) => {
  const auth = socket.handshake.auth || {};
  next(auth.token === "let-me-in" ? undefined : new Error("unauthorized"));
});
admin.on("connection", (socket) => {
  socket.emit("hello", { role: "admin" });
  socket.on("whoami", (ack) => answer(ack, { auth: socket.handshake.auth }));
});

async function main() {
  await pool.query(
    "CREATE TABLE IF NOT EXISTS sio_example_messages (id TEXT PRIMARY KEY, room TEXT NOT NULL, text TEXT NOT NULL)",
  );
  ready = true;
}

server.listen(Number(port), host, () => {
  main().catch((error) => {
    console.error(error);
    process.exit(1);
  });
});
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    io.close();
    pool.end().finally(() => process.exit(0));
  });
}
