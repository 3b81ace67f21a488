// Round-trip latency for Artillery's ws engine, which measures none: the time from
// just before a `send` to just after its echo matched, as a histogram in the report.
module.exports = {
  markSent(context, events, done) {
    context.vars.sentAt = process.hrtime.bigint();
    return done();
  },
  recordRoundTrip(context, events, done) {
    const micros = Number(process.hrtime.bigint() - context.vars.sentAt) / 1000;
    events.emit('histogram', 'round_trip_ms', micros / 1000);
    return done();
  },
};
