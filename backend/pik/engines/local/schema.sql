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

-- 4. coverage per entity per hour and per day, per source; and per day over all sources.
-- Keyed time first: a batch touches the few windows it falls in, so its counter updates
-- land on a handful of pages however many entities it spans. A query over a range reads
-- those windows for every entity and keeps the ones asked for. Hourly coverage over all
-- sources is not stored: it is the sum over an entity's sources, which are adjacent in
-- key order, added up at query time without a sort. Daily coverage over all sources is
-- stored, because day ranges are long (90 days x 1,000 entities in well under 100 ms).
CREATE TABLE IF NOT EXISTS coverage (
    granularity     TEXT NOT NULL,           -- hour | day
    window_start_us INTEGER NOT NULL,
    entity_id       TEXT NOT NULL,
    source          TEXT NOT NULL,
    count           INTEGER NOT NULL,
    PRIMARY KEY (granularity, window_start_us, entity_id, source)
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
