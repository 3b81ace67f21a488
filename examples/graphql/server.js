// A small GraphQL chat server (the Node `graphql`, `graphql-ws` and `ws` packages,
// backed by Postgres) that the example suite in this folder runs against, speaking
// graphql-transport-ws at /graphql. Configured by the environment:
//   BIND          host:port to listen on (default 127.0.0.1:18841)
//   DATABASE_URL  Postgres to store messages in (table gql_example_messages)
//
// `connection_init` needs a payload with `user` (else the server closes with 4403).
//   query    hello(name)                -> "hello <name>"
//   mutation postMessage(room, text)    -> stores a row, publishes it to the room
//   subscription roomEvents(room)       -> {kind: "joined"} once listening, then
//                                          {kind: "message", message} per message
//   subscription countdown(from)        -> from, from - 1, ... 0, then complete
// GET /healthz answers once the table exists.
"use strict";

const http = require("node:http");
const { EventEmitter } = require("node:events");
const { randomUUID } = require("node:crypto");
const { buildSchema } = require("graphql");
const { WebSocketServer } = require("ws");
const { useServer } = require("graphql-ws/use/ws");
const { Pool } = require("pg");

const [host, port] = (process.env.BIND || "127.0.0.1:18841").split(":");
const pool = new Pool({ connectionString: process.env.DATABASE_URL });
const posted = new EventEmitter();
posted.setMaxListeners(0);
let ready = false;

const schema = buildSchema(`
  type Message { id: ID! room: String! text: String! author: String! }
  type RoomEvent { kind: String! message: Message }
  type Query { hello(name: String!): String! }
  type Mutation { postMessage(room: String!, text: String!): Message! }
  type Subscription {
    roomEvents(room: String!): RoomEvent!
    countdown(from: Int!): Int!
  }
`);

// The events of `emitter` named `name`, as an async iterator that stops listening
// when the client completes the subscription.
function listen(emitter, name) {
  const queue = [];
  let wake = null;
  const push = (value) => {
    queue.push(value);
    if (wake) wake();
  };
  emitter.on(name, push);
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next() {
      while (queue.length === 0) await new Promise((resolve) => (wake = resolve));
      return { value: queue.shift(), done: false };
    },
    async return() {
      emitter.off(name, push);
      return { value: undefined, done: true };
    },
  };
}

const roots = {
  query: {
    hello: ({ name }) => `hello ${name}`,
  },
  mutation: {
    postMessage: async ({ room, text }, context) => {
      const message = { id: `msg_${randomUUID()}`, room, text, author: context.user };
      await pool.query(
        "INSERT INTO gql_example_messages (id, room, text, author) VALUES ($1, $2, $3, $4)",
        [message.id, room, text, message.author],
      );
      posted.emit(`room:${room}`, message);
      return message;
    },
  },
  subscription: {
    roomEvents: async function* ({ room }) {
      const messages = listen(posted, `room:${room}`);
      try {
        yield { roomEvents: { kind: "joined", message: null } };
        for await (const message of messages) {
          yield { roomEvents: { kind: "message", message } };
        }
      } finally {
        await messages.return();
      }
    },
    countdown: async function* ({ from }) {
      for (let n = from; n >= 0; n--) yield { countdown: n };
    },
  },
};

const httpServer = http.createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(ready ? 200 : 503).end(ready ? "ok" : "starting");
    return;
  }
  res.writeHead(404).end();
});

const wsServer = new WebSocketServer({ server: httpServer, path: "/graphql" });
useServer(
  {
    schema,
    roots,
    onConnect: (ctx) => {
      const user = ctx.connectionParams && ctx.connectionParams.user;
      return typeof user === "string" && user !== "";
    },
    context: (ctx) => ({ user: ctx.connectionParams.user }),
  },
  wsServer,
);

async function main() {
  await pool.query(
    "CREATE TABLE IF NOT EXISTS gql_example_messages (id TEXT PRIMARY KEY, room TEXT NOT NULL, text TEXT NOT NULL, author TEXT NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now())",
  );
  ready = true;
}

httpServer.listen(Number(port), host, () => {
  main().catch((error) => {
    console.error(`cannot prepare the database: ${error.message}`);
    process.exit(1);
  });
});
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    wsServer.close();
    httpServer.close();
    pool.end().finally(() => process.exit(0));
  });
}
