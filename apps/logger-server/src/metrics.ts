import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The group's running totals, read from Redis when /metrics is scraped (never on the write path). */
export type GroupTotalsSource = () => Promise<GroupTotals>;
type GroupTotals = { missing: number; deadLettered: number; conflicts: number };

/**
 * Prometheus metrics of one server. Names start with logger_. The loss gauges read the group's
 * totals when scraped (Redis unreachable: the last values stand, and logger_ready says why).
 */
export function createMetrics(groupTotals?: GroupTotalsSource, shards = 1) {
  const registry = new Registry();
  // Each shard's stream has its own groups: with LOG_SHARDS > 1 their gauges carry the shard, so
  // one shard's numbers never overwrite another's. One shard keeps today's series, label for label.
  const groupLabels = shards > 1 ? ['group', 'shard'] : ['group'];
  // One read of the totals per scrape, shared by the gauges that show them (collected together).
  let reading: Promise<GroupTotals | undefined> | undefined;
  const readTotals = () => (reading ??= (groupTotals?.() ?? Promise.resolve(undefined)).catch(() => undefined).finally(() => setImmediate(() => (reading = undefined))));
  const totalsGauge = (name: string, help: string, pick: (totals: GroupTotals) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        const totals = await readTotals();
        if (totals !== undefined) this.set(pick(totals));
      },
    });
  const m = {
    registry,
    recordsWritten: new Counter({ name: 'logger_records_written_total', help: 'Records written and fsynced to log files', labelNames: ['app'], registers: [registry] }),
    bytesWritten: new Counter({ name: 'logger_bytes_written_total', help: 'Bytes written and fsynced to log files', registers: [registry] }),
    entriesAcked: new Counter({ name: 'logger_entries_acked_total', help: 'Stream entries acknowledged (XACK)', registers: [registry] }),
    duplicatesDropped: new Counter({ name: 'logger_duplicates_dropped_total', help: 'Records not written because they were already on disk', registers: [registry] }),
    producerReportedDrops: new Counter({ name: 'logger_producer_reported_drops_total', help: 'Records the producers reported they dropped', registers: [registry] }),
    missing: totalsGauge(
      'logger_missing_records',
      "Sequence numbers that no server of the group committed or dead-lettered, below each producer's highest, over all producers (the group's loss report)",
      (totals) => totals.missing,
    ),
    deadLettered: totalsGauge('logger_dead_lettered_records', "Records of known producers the group dead-lettered (the group's loss report; not counted as missing)", (totals) => totals.deadLettered),
    conflicts: totalsGauge(
      'logger_conflicting_records',
      "Records whose producer id and sequence number another origin (app, host) also sent: both kept; a forged or misconfigured producer (the group's loss report)",
      (totals) => totals.conflicts,
    ),
    deadLetters: new Counter({ name: 'logger_dead_letters_total', help: 'Entries or records sent to the dead-letter stream', labelNames: ['reason'], registers: [registry] }),
    deadLettersSpooled: new Gauge({
      name: 'logger_dead_letters_spooled',
      help: 'Dead letters kept on local disk because Redis was out of memory (moved into the stream when it has room)',
      registers: [registry],
    }),
    deadLetterFailures: new Counter({
      name: 'logger_dead_letter_failures_total',
      help: 'Pub/Sub dead letters that could not be stored in Redis (counted in logger_dead_letters_total all the same)',
      registers: [registry],
    }),
    legacyMessages: new Counter({ name: 'logger_legacy_messages_total', help: 'Pub/Sub messages that were not frames (plain text or JSON from existing publishers)', registers: [registry] }),
    filesMovedAway: new Counter({
      name: 'logger_files_moved_away_total',
      help: 'Open files found moved away from their path (logrotate moved them before its SIGHUP) when due for rotation or when their descriptor was reopened: left where they were put, not archived',
      registers: [registry],
    }),
    fsyncSeconds: new Histogram({
      name: 'logger_fsync_seconds',
      help: 'Time to write and fdatasync one batch',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    batchRecords: new Histogram({
      name: 'logger_batch_records',
      help: 'Records per committed batch',
      buckets: [1, 10, 100, 1000, 10000, 100000],
      registers: [registry],
    }),
    redisErrors: new Counter({ name: 'logger_redis_errors_total', help: 'Failed reads or acks (the server retries)', registers: [registry] }),
    claimedEntries: new Counter({ name: 'logger_claimed_entries_total', help: 'Entries taken over from consumers that left them pending (XAUTOCLAIM)', registers: [registry] }),
    entriesLostToClaim: new Counter({ name: 'logger_entries_lost_to_claim_total', help: 'Entries not written because another consumer claimed them first', registers: [registry] }),
    streamTrimmedEntries: new Counter({ name: 'logger_stream_trimmed_entries_total', help: 'Stream entries removed by retention (all groups had acknowledged them)', registers: [registry] }),
    groupPending: new Gauge({ name: 'logger_group_pending', help: 'Entries read and not yet acknowledged, per group (and shard)', labelNames: groupLabels, registers: [registry] }),
    groupLag: new Gauge({ name: 'logger_group_lag', help: 'Entries not yet read, per group (and shard; a lagging group holds retention back)', labelNames: groupLabels, registers: [registry] }),
    retentionBlockedBy: new Gauge({
      name: 'logger_retention_blocked_by',
      help: "1 for the group whose oldest unacknowledged or unread entry holds stream trimming back (per shard: each shard's stream is trimmed on its own)",
      labelNames: groupLabels,
      registers: [registry],
    }),
    pubsubDisconnects: new Gauge({ name: 'logger_pubsub_disconnects', help: 'Times the Pub/Sub subscription was lost (messages published meanwhile were not heard)', registers: [registry] }),
    bridgeHolder: new Gauge({
      name: 'logger_pubsub_bridge_holder',
      help: 'LOG_TRANSPORT=stream,pubsub: 1 while this server holds the Pub/Sub bridge (moves the channel into the stream)',
      registers: [registry],
    }),
    bridgeForwarded: new Counter({ name: 'logger_pubsub_bridged_messages_total', help: 'Pub/Sub messages this server moved into the stream as the bridge', registers: [registry] }),
    bridgeTakeovers: new Counter({ name: 'logger_pubsub_bridge_takeovers_total', help: 'Times this server became the Pub/Sub bridge', registers: [registry] }),
    bridgeUnplaced: new Counter({
      name: 'logger_pubsub_bridge_unplaced_windows_total',
      help: 'Windows of Pub/Sub messages this server, as the bridge, may not have moved into the stream: a takeover that could not find where its predecessor stopped (it subscribed later, its subscription was down), or its own subscription down; each is logged with its window',
      registers: [registry],
    }),
    bridgeLost: new Counter({
      name: 'logger_pubsub_bridge_lost_messages_total',
      help: 'Pub/Sub messages this server heard, as the bridge, and did not add to the stream: its buffer was full (redis did not take them), or on taking over they had already left its ring',
      registers: [registry],
    }),
    archiveUploads: new Counter({
      name: 'logger_archive_uploads_total',
      help: 'Closed files archived to S3 and deleted locally (status uploaded, or exists: found already archived)',
      labelNames: ['status'],
      registers: [registry],
    }),
    archiveBytesIn: new Counter({ name: 'logger_archive_bytes_in_total', help: 'Bytes of log files archived (before gzip)', registers: [registry] }),
    archiveBytesOut: new Counter({ name: 'logger_archive_bytes_out_total', help: 'Bytes stored in S3 (after gzip); in / out is the compression ratio', registers: [registry] }),
    archiveFailures: new Counter({ name: 'logger_archive_failures_total', help: 'Failed archive attempts by reason (retried, nothing deleted)', labelNames: ['reason'], registers: [registry] }),
    archiveBacklogFiles: new Gauge({ name: 'logger_archive_backlog_files', help: 'Closed files waiting to be archived', registers: [registry] }),
    archiveBacklogBytes: new Gauge({ name: 'logger_archive_backlog_bytes', help: 'Bytes of closed files waiting to be archived', registers: [registry] }),
    archiveBacklogOldestSeconds: new Gauge({ name: 'logger_archive_backlog_oldest_seconds', help: 'Age of the oldest closed file not yet archived', registers: [registry] }),
    archiveStaleUploadsAborted: new Counter({
      name: 'logger_archive_stale_uploads_aborted_total',
      help: 'Incomplete multipart uploads of this server aborted at start (left by a kill)',
      registers: [registry],
    }),
    archiveCompressionRatio: new Gauge({ name: 'logger_archive_compression_ratio', help: 'Raw bytes / gzip bytes of the last archived file', registers: [registry] }),
    archiveLastSuccess: new Gauge({ name: 'logger_archive_last_success_timestamp_seconds', help: 'When the last file was archived', registers: [registry] }),
    ready: new Gauge({ name: 'logger_ready', help: '1 while Redis and the disk work', registers: [registry] }),
    /**
     * Sets the group gauges from one stream's groups as its trim saw them (StreamReader.trim):
     * labelled with the shard (0..N-1) when the channel has several, as before when it has one.
     */
    setGroupGauges(shard: number | undefined, { groups, slowest }: { groups: ReadonlyArray<{ name: string; pending: number; lag: number | undefined }>; slowest: string | undefined }): void {
      for (const group of groups) {
        const labels = shards > 1 && shard !== undefined ? { group: group.name, shard: String(shard) } : { group: group.name };
        m.retentionBlockedBy.set(labels, group.name === slowest ? 1 : 0);
        m.groupPending.set(labels, group.pending);
        if (group.lag !== undefined) m.groupLag.set(labels, group.lag);
      }
    },
  };
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;
