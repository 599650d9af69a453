-- The local index. Every row here is derived from the segment files and can be rebuilt
-- from them alone (`pik reindex`). Keys mirror the DynamoDB access patterns.
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS segments (
    segment_id    INTEGER PRIMARY KEY,
    created_us    INTEGER NOT NULL,
    committed_end INTEGER NOT NULL,          -- bytes framed, fsync'd and indexed
    sealed_us     INTEGER,                   -- NULL while the segment is active
    sha256        TEXT,                      -- of bytes [0, committed_end) once sealed
    torn_bytes    INTEGER NOT NULL DEFAULT 0 -- unacknowledged bytes left past committed_end
);

-- 1. event by id (with the arrivals that followed it in `attempts`)
CREATE TABLE IF NOT EXISTS events (
    seq             INTEGER PRIMARY KEY,     -- arrival order; keeps inserts appending
    event_id        BLOB NOT NULL UNIQUE,
    content_hash    BLOB NOT NULL,
    entity_id       TEXT NOT NULL,
    source          TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    event_time_us   INTEGER NOT NULL,
    ingest_time_us  INTEGER NOT NULL,
    idempotency_key TEXT,
    origin          TEXT NOT NULL,
    segment_id      INTEGER NOT NULL,
    offset          INTEGER NOT NULL,
    length          INTEGER NOT NULL,
    sha256          BLOB NOT NULL,
    duplicate_count INTEGER NOT NULL DEFAULT 0,
    conflict_count  INTEGER NOT NULL DEFAULT 0,
    last_seen_us    INTEGER NOT NULL,
    day             INTEGER NOT NULL         -- event_time_us // 86_400_000_000
);
-- 2. entity timeline by event time, paged both ways by (event_time_us, event_id).
-- Partitioned by day of event time: a batch spanning a thousand entities then inserts into
-- the few pages of its day instead of one page per entity, so ingest stays flat as the
-- store grows. A timeline query walks the days of the range (within the entity's first and
-- last event) until its page is full.
CREATE INDEX IF NOT EXISTS events_timeline ON events (day, entity_id, event_time_us, event_id);

CREATE TABLE IF NOT EXISTS attempts (
    event_id      BLOB NOT NULL,
    kind          TEXT NOT NULL,             -- duplicate | conflict
    origin        TEXT NOT NULL,
    count         INTEGER NOT NULL,
    first_seen_us INTEGER NOT NULL,
    last_seen_us  INTEGER NOT NULL,
    PRIMARY KEY (event_id, kind, origin)
) WITHOUT ROWID;

-- 3. ingest counters per minute per source, with the lag histogram
CREATE TABLE IF NOT EXISTS rates (
    minute_us INTEGER NOT NULL,
    source    TEXT NOT NULL,
    accepted  INTEGER NOT NULL DEFAULT 0,
    duplicate INTEGER NOT NULL DEFAULT 0,
    rejected  INTEGER NOT NULL DEFAULT 0,
    late      INTEGER NOT NULL DEFAULT 0,
    conflict  INTEGER NOT NULL DEFAULT 0,
    -- lag histogram of accepted events, one column per bucket of pik.domain.lag
    lag_0 INTEGER NOT NULL DEFAULT 0, lag_1 INTEGER NOT NULL DEFAULT 0,
    lag_2 INTEGER NOT NULL DEFAULT 0, lag_3 INTEGER NOT NULL DEFAULT 0,
    lag_4 INTEGER NOT NULL DEFAULT 0, lag_5 INTEGER NOT NULL DEFAULT 0,
    lag_6 INTEGER NOT NULL DEFAULT 0, lag_7 INTEGER NOT NULL DEFAULT 0,
    lag_8 INTEGER NOT NULL DEFAULT 0, lag_9 INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (minute_us, source)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS rejections (
    minute_us INTEGER NOT NULL,
    source    TEXT NOT NULL,
    code      TEXT NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (minute_us, source, code)
) WITHOUT ROWID;

-- 4. coverage per entity per source per day, with the day's 24 hourly counts in the row
-- (as the DynamoDB engine keeps them), and per day over all sources.
-- Keyed time first: a batch touches the few days it falls in, so its counter updates land
-- on a handful of pages however many entities it spans. A query over a range reads those
-- days for every entity and keeps the ones asked for. An event moves one row per source
-- and one over all sources; hours over all sources are summed at query time (an entity's
-- sources are adjacent in key order, so the sum streams without a sort). Daily coverage
-- over all sources is stored, because day ranges are long (90 days x 1,000 entities).
CREATE TABLE IF NOT EXISTS coverage (
    day_start_us INTEGER NOT NULL,
    entity_id    TEXT NOT NULL,
    source       TEXT NOT NULL,
    count        INTEGER NOT NULL,           -- events in the day
    -- events per hour of the day (UTC): h0 is [00:00, 01:00)
    h0 INTEGER NOT NULL DEFAULT 0, h1 INTEGER NOT NULL DEFAULT 0, h2 INTEGER NOT NULL DEFAULT 0,
    h3 INTEGER NOT NULL DEFAULT 0, h4 INTEGER NOT NULL DEFAULT 0, h5 INTEGER NOT NULL DEFAULT 0,
    h6 INTEGER NOT NULL DEFAULT 0, h7 INTEGER NOT NULL DEFAULT 0, h8 INTEGER NOT NULL DEFAULT 0,
    h9 INTEGER NOT NULL DEFAULT 0, h10 INTEGER NOT NULL DEFAULT 0, h11 INTEGER NOT NULL DEFAULT 0,
    h12 INTEGER NOT NULL DEFAULT 0, h13 INTEGER NOT NULL DEFAULT 0, h14 INTEGER NOT NULL DEFAULT 0,
    h15 INTEGER NOT NULL DEFAULT 0, h16 INTEGER NOT NULL DEFAULT 0, h17 INTEGER NOT NULL DEFAULT 0,
    h18 INTEGER NOT NULL DEFAULT 0, h19 INTEGER NOT NULL DEFAULT 0, h20 INTEGER NOT NULL DEFAULT 0,
    h21 INTEGER NOT NULL DEFAULT 0, h22 INTEGER NOT NULL DEFAULT 0, h23 INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day_start_us, entity_id, source)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS coverage_all_sources (
    day_start_us INTEGER NOT NULL,
    entity_id    TEXT NOT NULL,
    count        INTEGER NOT NULL,
    PRIMARY KEY (day_start_us, entity_id)
) WITHOUT ROWID;

-- 5. entity discovery: list and prefix search, per source
CREATE TABLE IF NOT EXISTS entities (
    entity_id      TEXT NOT NULL,
    source         TEXT NOT NULL,
    first_event_us INTEGER NOT NULL,
    last_event_us  INTEGER NOT NULL,
    count          INTEGER NOT NULL,
    PRIMARY KEY (entity_id, source)
) WITHOUT ROWID;
