"""Every DynamoDB and S3 request the AWS engine makes, as plain keyword dictionaries.

The key schema is written here once. The dictionaries use DynamoDB's low-level attribute
format, so the same shapes run on boto3 (Lambda, the CLI) and on aiobotocore (the TUI); the
engines only execute them and parse the answers.

One table, string keys ``pk``/``sk``::

    E#<event id hex>        E                       the event: location, hash, counters
    E#<event id hex>        A#<kind>#<origin>       later arrivals through one origin
    B#<object key>#<group>  B                       a commit group: st = c committed,
                                                    a abandoned (its claims taken over;
                                                    w = 1: its bytes were written)
    C#<day us>#<shard>      <entity>!<source>       coverage of one day: d, h00..h23
    V#<spec>#<entity>       <window us>!<version>   one aggregate version (the processor)
    R#<day us>#<shard>      <minute us>!<source>    ingest rates, lag buckets, rejections
    T#<shard>               T                       store totals
    D#<shard>               c!<day us> / r!<day us> a day with coverage / rate items

The replay ledger shares the table (it is not derived data: point-in-time recovery is its
protection, not a rebuild from raw). Its partitions begin with ``P``, ``X`` or ``U`` and
nothing else does, so IAM can grant writes to them alone (``dynamodb:LeadingKeys``)::

    P#<plan id>             P, P#<part>             a plan document, in parts of < 300 KB
    X#<replay id>           X                       a run: its document, status, progress
    X                       <started us>!<replay>   the runs by start (newest: one Query)
    U#<day us>              <at us>!<random>        one audit record
    U                       <day us>                a day that has audit records

The ledger's requests are built in ``ledger_shapes`` on these keys.

Indexes: ``timeline`` (``tl_pk`` = entity, ``tl_sk`` = event time and id) over event
items, and ``directory`` (``dir_pk`` = shard, ``dir_sk`` = entity!source!day) over coverage
items, for entity listing and prefix search. ``!`` sorts below every character an entity
or a source may hold, so ``user:1`` lists before ``user:10``, as in the local engine. Times
in sort keys are zero-padded to 19 digits, so key order is time order. No key part is ever
a path: S3 object keys are made of the ingest time and a random id only.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from pik.domain.envelope import could_be_entity
from pik.domain.instants import US_PER_DAY, US_PER_HOUR, format_instant
from pik.domain.lag import LAG_LABELS

if TYPE_CHECKING:
    from pik.domain.versions import Version

Item = dict[str, dict[str, Any]]
Request = dict[str, Any]

TIMELINE_INDEX = "timeline"
DIRECTORY_INDEX = "directory"
RAW_PREFIX = "raw/"

COVERAGE_SHARDS = 8
"""Coverage items of one day spread over this many partitions (hot-key sharding)."""
DIRECTORY_SHARDS = 8
RATE_SHARDS = 4
"""Each write picks one rate shard; readers sum them."""
TOTAL_SHARDS = 8

MAX_ENTITY_CHARS = 512
"""The longest entity id this engine keys. The directory's sort key (entity!source!day)
must stay within DynamoDB's 1,024 bytes, and ids are ASCII; the default limit is 256."""
MAX_SOURCE_CHARS = 256
"""The longest source this engine keys (in the same sort key; the default limit is 128)."""

MAX_TRANSACTION_ACTIONS = 100
MAX_BATCH_GET_KEYS = 100
SEP = "!"
COVERAGE_DAYS, RATE_DAYS = "c", "r"
DAY_SHARDS = 8
LAG_ATTRIBUTES = tuple(f"l{i}" for i in range(len(LAG_LABELS)))
HOUR_ATTRIBUTES = tuple(f"h{i:02d}" for i in range(24))


def s(value: str) -> dict[str, str]:
    return {"S": value}


def n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def b(value: bytes) -> dict[str, bytes]:
    return {"B": value}


def keyable_entity(text: str) -> bool:
    """Whether ``text`` could be a stored entity's id here: one that could not is answered
    empty without a request (DynamoDB refuses an empty or oversized key; moto does not)."""
    return len(text) <= MAX_ENTITY_CHARS and could_be_entity(text)


def past_entities_up_to(after: str) -> str:
    """The least directory sort key above every row of the entities at or before
    ``after``, kept within DynamoDB's 1,024-byte key (``after`` is any string).

    Entity ids are at most MAX_ENTITY_CHARS ASCII characters from one set, so ``after``
    matters only up to its first character outside that set: no id goes on past it.
    """
    cut = next((i for i, c in enumerate(after) if not could_be_entity("a" + c)), len(after))
    if cut >= min(len(after), MAX_ENTITY_CHARS):
        return after[:MAX_ENTITY_CHARS] + '"'
    # At least '"', which sorts just above the separator '!' (the rows of `kept` itself end
    # below it); at most DEL, above every ASCII character (every id that goes on from `kept`
    # with a character below the one `after` has).
    return after[:cut] + max('"', min(after[cut], "\x7f"))


def pad(micros: int) -> str:
    return f"{micros:019d}"


def shard_of(text: str, shards: int) -> int:
    """A stable shard for a key part (crc32: the same on every machine and Python)."""
    return zlib.crc32(text.encode("utf-8")) % shards


# --- keys ------------------------------------------------------------------------------


def event_key(event_id: bytes) -> Item:
    return {"pk": s(f"E#{event_id.hex()}"), "sk": s("E")}


def attempt_key(event_id: bytes, kind: str, origin: str) -> Item:
    return {"pk": s(f"E#{event_id.hex()}"), "sk": s(f"A#{kind}#{origin}")}


def commit_key(segment: str, group: int) -> Item:
    """The commit item of one group of a batch's events (their counters commit with it)."""
    return {"pk": s(f"B#{segment}#{group}"), "sk": s("B")}


def timeline_sort_key(event_time_us: int, event_id: bytes) -> str:
    return f"{pad(event_time_us)}{SEP}{event_id.hex()}"


def coverage_partition(day_us: int, entity_id: str) -> str:
    return f"C#{day_us}#{shard_of(entity_id, COVERAGE_SHARDS)}"


def coverage_key(day_us: int, entity_id: str, source: str) -> Item:
    return {
        "pk": s(coverage_partition(day_us, entity_id)),
        "sk": s(f"{entity_id}{SEP}{source}"),
    }


def directory_partition(entity_id: str) -> str:
    return f"N#{shard_of(entity_id, DIRECTORY_SHARDS)}"


def rate_key(minute_us: int, source: str, shard: int) -> Item:
    """A rate item; ``shard`` is any number (a writer's pick), folded onto the rate shards."""
    day = minute_us - minute_us % US_PER_DAY
    return {
        "pk": s(f"R#{day}#{shard % RATE_SHARDS}"),
        "sk": s(f"{pad(minute_us)}{SEP}{source}"),
    }


def day_key(kind: str, day_us: int, shard: int) -> Item:
    return {"pk": s(f"D#{shard % DAY_SHARDS}"), "sk": s(f"{kind}{SEP}{pad(day_us)}")}


def total_key(shard: int) -> Item:
    return {"pk": s(f"T#{shard % TOTAL_SHARDS}"), "sk": s("T")}


def object_key(ingest_us: int, unique: str) -> str:
    """Where a batch's segment lives: ingest hour, then ingest time and a random id."""
    stamp = format_instant(ingest_us - ingest_us % US_PER_HOUR)  # 2026-11-01T10:00:00.000000Z
    hour = f"{stamp[:4]}/{stamp[5:7]}/{stamp[8:10]}/{stamp[11:13]}"
    return f"{RAW_PREFIX}{hour}/{ingest_us}-{unique}.pks"


def object_written_us(key: str) -> int | None:
    """When the object at ``key`` was written (the ingest time its key holds), or None for
    a key ``object_key`` did not make."""
    stamp = key.rsplit("/", 1)[-1].split("-", 1)[0]
    return int(stamp) if key.startswith(RAW_PREFIX) and stamp.isdigit() else None


# --- writes ----------------------------------------------------------------------------


def _put_if(
    table: str, item: Item, condition: str, values: dict[str, Any] | None = None
) -> Request:
    """A conditional put in a transaction; refused with the stored item returned."""
    put: dict[str, Any] = {
        "TableName": table,
        "Item": item,
        "ConditionExpression": condition,
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    if values:
        put["ExpressionAttributeValues"] = values
    return {"Put": put}


def put_event(table: str, item: Item) -> Request:
    """First arrival of an event: refused (and the stored item returned) if it exists."""
    return _put_if(table, item, "attribute_not_exists(pk)")


def take_over(table: str, item: Item, old_object: str, old_group: int) -> Request:
    """Claim an event whose claim was never committed: only if it still names that group
    (``old_object`` is the object the group belongs to, see ``commit_object``)."""
    condition = "grp = :g AND (cg = :s OR (attribute_not_exists(cg) AND seg = :s))"
    return _put_if(table, item, condition, {":s": s(old_object), ":g": n(old_group)})


COMMITTED, ABANDONED = "c", "a"


def put_commit(table: str, segment: str, group: int, at_us: int) -> Request:
    """Commit a group: refused if it exists (a taker abandoned it first)."""
    item = {**commit_key(segment, group), "st": s(COMMITTED), "at": n(at_us)}
    return _put_if(table, item, "attribute_not_exists(pk)")


def abandon_group(
    table: str, segment: str, group: int, at_us: int, durable: bool = False
) -> Request:
    """Mark a group abandoned, so its late commit fails: refused if it was committed.

    ``durable``: its request wrote the object before failing, so the group's bytes exist
    and whoever takes its claims over points at them instead of writing them again. A taker
    (which cannot know) leaves that mark as it is.
    """
    values: dict[str, Any] = {":a": s(ABANDONED), ":t": n(at_us)}
    update = "SET st = :a, #at = if_not_exists(#at, :t)"
    if durable:
        update += ", w = :w"
        values[":w"] = n(1)
    return {
        "Update": {
            "TableName": table,
            "Key": commit_key(segment, group),
            "UpdateExpression": update,
            "ConditionExpression": "attribute_not_exists(pk) OR st = :a",
            "ExpressionAttributeNames": {"#at": "at"},
            "ExpressionAttributeValues": values,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }


def count_attempts(
    table: str, event_id: bytes, duplicates: int, conflicts: int, seen_us: int
) -> Request:
    """Later arrivals of a stored event: counted on the event, which must exist."""
    return {
        "Update": {
            "TableName": table,
            "Key": event_key(event_id),
            "UpdateExpression": "ADD dup :d, cnf :c SET ls = :t",
            "ConditionExpression": "attribute_exists(pk)",
            "ExpressionAttributeValues": {
                ":d": n(duplicates),
                ":c": n(conflicts),
                ":t": n(seen_us),
            },
        }
    }


def record_attempt(
    table: str, event_id: bytes, kind: str, origin: str, count: int, seen_us: int
) -> Request:
    return {
        "Update": {
            "TableName": table,
            "Key": attempt_key(event_id, kind, origin),
            "UpdateExpression": "ADD n :n SET fs = if_not_exists(fs, :t), ls = :t",
            "ExpressionAttributeValues": {":n": n(count), ":t": n(seen_us)},
        }
    }


def add_coverage(
    table: str, day_us: int, entity_id: str, source: str, hours: Mapping[int, int]
) -> Request:
    """Add one batch's events of an entity and source to a day's coverage item."""
    names = {f"#h{h}": HOUR_ATTRIBUTES[h] for h in hours}
    values: dict[str, Any] = {f":h{h}": n(c) for h, c in hours.items()}
    values.update(
        {
            ":d": n(sum(hours.values())),
            ":e": s(entity_id),
            ":s": s(source),
            ":day": n(day_us),
            ":dp": s(directory_partition(entity_id)),
            ":ds": s(f"{entity_id}{SEP}{source}{SEP}{pad(day_us)}"),
        }
    )
    adds = ", ".join(["d :d", *(f"#h{h} :h{h}" for h in hours)])
    return {
        "Update": {
            "TableName": table,
            "Key": coverage_key(day_us, entity_id, source),
            "UpdateExpression": (
                f"ADD {adds} SET ent = :e, src = :s, #day = :day, dir_pk = :dp, dir_sk = :ds"
            ),
            "ExpressionAttributeNames": {**names, "#day": "day"},
            "ExpressionAttributeValues": values,
        }
    }


def add_rates(table: str, key: Item, counts: Mapping[str, int]) -> Request:
    """Add counters (accepted, lag buckets, rejection codes...) to a rate or total item."""
    names = {f"#c{i}": name for i, name in enumerate(counts)}
    values = {f":c{i}": n(value) for i, value in enumerate(counts.values())}
    adds = ", ".join(f"#c{i} :c{i}" for i in range(len(counts)))
    return {
        "Update": {
            "TableName": table,
            "Key": key,
            "UpdateExpression": f"ADD {adds}",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
    }


def add_totals(table: str, shard: int, counts: Mapping[str, int]) -> Request:
    """Add to one shard of the store totals."""
    return add_rates(table, total_key(shard), counts)


def note_day(table: str, kind: str, day_us: int, shard: int) -> Request:
    """Note a day that has coverage items (``COVERAGE_DAYS``, by event time) or rate items
    (``RATE_DAYS``, by ingest time), in the transaction writing them. A reader asks for the
    days noted in its range instead of visiting every day of it: a range of decades costs
    what its days with data cost. A put of a set (no maximum to keep), so writers whose
    clocks disagree cannot hide each other's days. A writer keeps to one of ``DAY_SHARDS``
    partitions, so writers meeting a new day at once (midnight, cold starts) seldom put
    the same item in concurrent transactions, which would cancel each other."""
    return {"Put": {"TableName": table, "Item": day_key(kind, day_us, shard)}}


def noted_days(table: str, kind: str, first_day_us: int, last_day_us: int, shard: int) -> Request:
    """The days one shard noted of one kind from ``first_day_us`` to ``last_day_us``,
    inclusive."""
    return {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk AND sk BETWEEN :lo AND :hi",
        "ExpressionAttributeValues": {
            ":pk": s(f"D#{shard % DAY_SHARDS}"),
            ":lo": s(f"{kind}{SEP}{pad(first_day_us)}"),
            ":hi": s(f"{kind}{SEP}{pad(last_day_us)}"),
        },
        "ConsistentRead": True,
    }


def noted_day(item: Item) -> int:
    return int(item["sk"]["S"].split(SEP)[1])


def transaction(actions: Sequence[Request], token: str) -> Request:
    """One atomic write; the token makes an SDK retry of the same request a no-op."""
    if len(actions) > MAX_TRANSACTION_ACTIONS:
        raise ValueError(
            f"a transaction holds at most {MAX_TRANSACTION_ACTIONS} actions, got {len(actions)}"
        )
    return {"TransactItems": list(actions), "ClientRequestToken": token}


def put_segment(bucket: str, key: str, body: bytes, sha256_b64: str) -> Request:
    """Raw bytes, written once: S3 refuses (412) if anything already has this key."""
    return {
        "Bucket": bucket,
        "Key": key,
        "Body": body,
        "IfNoneMatch": "*",
        "ChecksumSHA256": sha256_b64,
        "ContentType": "application/octet-stream",
    }


# --- reads -----------------------------------------------------------------------------


def known_events(table: str, event_ids: Iterable[bytes]) -> Request:
    """Which of these events are claimed: content, location, commit group (strongly
    consistent)."""
    keys = [event_key(i) for i in event_ids]
    if len(keys) > MAX_BATCH_GET_KEYS:
        raise ValueError(f"a batch read holds at most {MAX_BATCH_GET_KEYS} keys, got {len(keys)}")
    return {
        "RequestItems": {
            table: {
                "Keys": keys,
                "ConsistentRead": True,
                "ProjectionExpression": "pk, ch, it, seg, off, len, sha, grp, cg",
            }
        }
    }


def commit_states(table: str, keys: Sequence[Item]) -> Request:
    """Which of these commit items exist, and their state (strongly consistent)."""
    if len(keys) > MAX_BATCH_GET_KEYS:
        raise ValueError(f"a batch read holds at most {MAX_BATCH_GET_KEYS} keys, got {len(keys)}")
    return {
        "RequestItems": {
            table: {
                "Keys": list(keys),
                "ConsistentRead": True,
                "ProjectionExpression": "pk, st, w",
            }
        }
    }


def commit_object(item: Mapping[str, Any]) -> str:
    """The object whose request commits an event item: the one holding its bytes, unless
    the claim took over bytes an earlier request wrote and then failed to commit (``cg``)."""
    named = item.get("cg") or item["seg"]
    return str(named["S"])


def group_of(item: Mapping[str, Any]) -> Item | None:
    """The commit key an event item waits for (``None``: written before commit groups)."""
    if "grp" not in item:
        return None
    return commit_key(commit_object(item), int(item["grp"]["N"]))


def get_event(table: str, event_id: bytes) -> Request:
    return {"TableName": table, "Key": event_key(event_id), "ConsistentRead": True}


def get_attempts(table: str, event_id: bytes) -> Request:
    return {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :a)",
        "ExpressionAttributeValues": {":pk": s(f"E#{event_id.hex()}"), ":a": s("A#")},
        "ConsistentRead": True,
    }


def read_event_bytes(bucket: str, key: str, offset: int, length: int) -> Request:
    return {"Bucket": bucket, "Key": key, "Range": f"bytes={offset}-{offset + length - 1}"}


def timeline_query(
    table: str,
    entity_id: str,
    low: str,
    high: str,
    forward: bool,
    limit: int,
) -> Request:
    """Events of one entity with ``low <= tl_sk <= high`` (sort keys), nearest first."""
    return {
        "TableName": table,
        "IndexName": TIMELINE_INDEX,
        "KeyConditionExpression": "tl_pk = :e AND tl_sk BETWEEN :lo AND :hi",
        "ExpressionAttributeValues": {":e": s(entity_id), ":lo": s(low), ":hi": s(high)},
        "ScanIndexForward": forward,
        "Limit": limit,
    }


def coverage_query(table: str, partition: str, entity_id: str | None) -> Request:
    request: Request = {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": s(partition)},
    }
    if entity_id is not None:
        request["KeyConditionExpression"] += " AND begins_with(sk, :e)"
        request["ExpressionAttributeValues"][":e"] = s(f"{entity_id}{SEP}")
    return request


def coverage_partitions(day_us: int) -> list[str]:
    return [f"C#{day_us}#{shard}" for shard in range(COVERAGE_SHARDS)]


def rates_query(table: str, day_us: int, shard: int, start_us: int, end_us: int) -> Request:
    """Rate items of one day partition for ingest minutes in ``[start, end)``."""
    return {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk AND sk BETWEEN :lo AND :hi",
        "ExpressionAttributeValues": {
            ":pk": s(f"R#{day_us}#{shard}"),
            ":lo": s(pad(start_us)),
            ":hi": s(pad(end_us - 1) + "~"),
        },
        "ConsistentRead": True,
    }


def directory_query(table: str, shard: int, low: str, high: str | None) -> Request:
    """Directory rows (entity!source!day) of one shard with ``low <= dir_sk [<= high]``."""
    if high is None and not low:
        condition = "dir_pk = :p"
        values = {":p": s(f"N#{shard}")}
    elif high is None:
        condition = "dir_pk = :p AND dir_sk >= :lo"
        values = {":p": s(f"N#{shard}"), ":lo": s(low)}
    else:
        condition = "dir_pk = :p AND dir_sk BETWEEN :lo AND :hi"
        values = {":p": s(f"N#{shard}"), ":lo": s(low), ":hi": s(high)}
    return {
        "TableName": table,
        "IndexName": DIRECTORY_INDEX,
        "KeyConditionExpression": condition,
        "ExpressionAttributeValues": values,
        "ProjectionExpression": "ent, src, #day, d, dir_sk",
        "ExpressionAttributeNames": {"#day": "day"},
    }


def totals(table: str) -> Request:
    return {
        "RequestItems": {
            table: {"Keys": [total_key(i) for i in range(TOTAL_SHARDS)], "ConsistentRead": True}
        }
    }


def scan_events(table: str) -> Request:
    """Every event and commit item (for verify, run by an operator: no Lambda role may
    scan)."""
    return {
        "TableName": table,
        "FilterExpression": "sk = :e OR sk = :b",
        "ExpressionAttributeValues": {":e": s("E"), ":b": s("B")},
    }


# --- aggregate versions (the processor) ------------------------------------------------


def version_partition(spec_id: str, entity_id: str) -> str:
    return f"V#{spec_id}#{entity_id}"


def version_sort_key(window_start_us: int, version: int) -> str:
    return f"{pad(window_start_us)}{SEP}{version:010d}"


ITEM_LIMIT_BYTES = 400 * 1024
"""DynamoDB's limit on one item: names and values together."""


def item_bytes(item: Mapping[str, Any]) -> int:
    """An item's size as DynamoDB counts it, for the string and binary items built here
    (numbers are counted by their digits, an upper bound of DynamoDB's own count)."""
    total = 0
    for name, value in item.items():
        [(kind, data)] = value.items()
        size = len(data) if kind == "B" else len(str(data).encode())
        total += len(name.encode()) + size
    return total


def put_version(table: str, version: Version) -> Request:
    """Write one version once: refused if that number exists (two processors raced)."""
    document = version.to_document()
    del document["input_ids"]  # packed below: 16 bytes an id instead of 34 characters
    return {
        "TableName": table,
        "Item": {
            "pk": s(version_partition(version.spec.spec_id, version.entity_id)),
            "sk": s(version_sort_key(version.window_start_us, version.version)),
            "doc": s(orjson.dumps(document).decode()),
            "ids": {"B": b"".join(version.input_ids)},
        },
        "ConditionExpression": "attribute_not_exists(pk)",
    }


def versions_of_window(table: str, spec_id: str, entity_id: str, window_start_us: int) -> Request:
    """Every version of one window, oldest first (strongly consistent)."""
    return {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :w)",
        "ExpressionAttributeValues": {
            ":pk": s(version_partition(spec_id, entity_id)),
            ":w": s(f"{pad(window_start_us)}{SEP}"),
        },
        "ConsistentRead": True,
    }


def versions_between(
    table: str, spec_id: str, entity_id: str, start_us: int, end_us: int
) -> Request:
    """Every version of the windows starting in ``[start, end)``, in key order."""
    return {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
        "ExpressionAttributeValues": {
            ":pk": s(version_partition(spec_id, entity_id)),
            ":low": s(pad(start_us)),
            ":high": s(f"{pad(end_us - 1)}{SEP}~"),
        },
        "ConsistentRead": True,
    }


# --- the replay ledger: keys (requests in ledger_shapes) --------------------------------

LEDGER_PARTITIONS = ("P#*", "X", "X#*", "U", "U#*")
"""The ledger's partition keys as IAM patterns (``dynamodb:LeadingKeys`` in template.yaml)."""
RUNS_PARTITION = "X"
AUDIT_DAYS_PARTITION = "U"
PLAN_HEAD = "P"


def plan_partition(plan_id: str) -> str:
    return f"P#{plan_id}"


def plan_part_key(plan_id: str, part: int) -> Item:
    """Part 0 is the head (the item a confirmation updates); later parts follow it in
    key order (``P`` sorts before ``P#001``)."""
    return {"pk": s(plan_partition(plan_id)), "sk": s(PLAN_HEAD if part == 0 else f"P#{part:03d}")}


def run_key(replay_id: str) -> Item:
    return {"pk": s(f"X#{replay_id}"), "sk": s("X")}


def run_listing_key(started_us: int, replay_id: str) -> Item:
    return {"pk": s(RUNS_PARTITION), "sk": s(f"{pad(started_us)}{SEP}{replay_id}")}


def audit_day(at_us: int) -> int:
    return at_us - at_us % US_PER_DAY


def audit_partition(day_us: int) -> str:
    return f"U#{day_us}"


def audit_key(at_us: int, unique: str) -> Item:
    """An audit record: its day's partition, sorted by time (``unique`` breaks ties)."""
    return {"pk": s(audit_partition(audit_day(at_us))), "sk": s(f"{pad(at_us)}{SEP}{unique}")}


def audit_day_key(day_us: int) -> Item:
    return {"pk": s(AUDIT_DAYS_PARTITION), "sk": s(pad(day_us))}
