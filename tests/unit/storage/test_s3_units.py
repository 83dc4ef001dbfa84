"""The pure parts of S3 mounts: part sizes, s3:// URLs, the mount keys of
mounts.yaml. No endpoint needed (the S3 behaviour itself is tested against
moto in tests/integration/test_s3*.py)."""

from __future__ import annotations

from datetime import datetime, timezone

import botocore.utils
import pytest

from vfsftp.config.schema import ConfigError, config_from_dict, s3_enum
from vfsftp.storage.s3 import (
    MAX_PART,
    MAX_PARTS,
    MIN_PART,
    FolderFacts,
    MiB,
    S3Options,
    StreamingS3FS,
    _boto_session,
    guess_content_type,
    open_s3,
    parse_timestamp,
    part_size_for,
)
from vfsftp.storage.sessionfs import FOLDER_MEMO_SIZE, FolderMemo

pytestmark = pytest.mark.s3

GiB = 1024 * MiB
TiB = 1024 * GiB


# ---------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    "value",
    [
        "2026-12-06T19:43:01.000Z",  # ListObjectsV2's LastModified
        "2026-12-06T19:43:01Z",
        "2026-12-06T19:43:01.123456Z",
        "2026-12-06T19:43:01.123456789Z",  # (3.10's fromisoformat refuses 9 digits)
        "Sun, 06 Dec 2026 19:43:01 GMT",  # HEAD's Last-Modified header
        "Sun, 06 Dec 2026 19:43:01 +0100",
        "Sun, 06 Dec 2026 19:43:01 -0000",  # no zone: email.utils gives a naive time
        "2026-12-06T19:43:01+02:00",
        "1765050181",
        1765050181,
    ],
)
def test_timestamps_parse_as_botocore_parses_them(value: object) -> None:
    ours, theirs = parse_timestamp(value), botocore.utils.parse_timestamp(value)
    assert ours == theirs
    assert ours.utcoffset() == theirs.utcoffset()


def test_s3_clients_parse_timestamps_the_fast_way() -> None:
    # The parser a client of the shared session builds for S3's rest-xml
    # responses: botocore's default would give dateutil's tzutc.
    core = _boto_session()._session
    parser = core.get_component("response_parser_factory").create_parser("rest-xml")
    shape = core.get_service_model("s3").operation_model("HeadObject")
    parsed = parser.parse(
        {
            "status_code": 200,
            "headers": {"Last-Modified": "Sun, 06 Dec 2026 19:43:01 GMT"},
            "body": b"",
        },
        shape.output_shape,
    )
    assert parsed["LastModified"] == datetime(2026, 12, 6, 19, 43, 1, tzinfo=timezone.utc)
    assert parsed["LastModified"].tzinfo is timezone.utc


# ---------------------------------------------------------------- part sizes


@pytest.mark.parametrize(
    ("part_number", "size"),
    [
        (1, 8 * MiB),
        (1000, 8 * MiB),
        (1001, 16 * MiB),
        (2000, 16 * MiB),
        (2001, 32 * MiB),
        (5001, 256 * MiB),
        (9001, 4 * GiB),
        (10_000, 4 * GiB),
    ],
)
def test_part_size_doubles_every_thousand_parts(part_number: int, size: int) -> None:
    assert part_size_for(part_number, 8 * MiB) == size


def _capacity(base: int) -> int:
    return sum(part_size_for(n, base) for n in range(1, MAX_PARTS + 1))


def test_ten_thousand_parts_reach_beyond_fixed_size_parts() -> None:
    # Fixed 5 MiB parts stop at 10,000 x 5 MiB = 48.8 GiB; growing parts do not.
    assert 48 * GiB < MAX_PARTS * MIN_PART < 49 * GiB
    for base in (MIN_PART, 8 * MiB, 16 * MiB, 64 * MiB):
        assert _capacity(base) > 48 * GiB * 100


def test_default_part_size_reaches_the_s3_object_limit() -> None:
    # S3's largest object is 5 TiB ("5 TB"); 8 MiB parts growing reach ~7.8 TiB.
    assert _capacity(8 * MiB) >= 5 * TiB
    assert _capacity(S3Options().part_size) >= 5 * TiB


@pytest.mark.parametrize(
    "base", [1, 1024, MiB, MIN_PART - 1, MIN_PART, 8 * MiB, 100 * MiB, GiB, MAX_PART]
)
def test_part_size_stays_within_s3_limits(base: int) -> None:
    sizes = [part_size_for(n, base) for n in (1, 2, 999, 1000, 1001, 4000, 8000, 9999, MAX_PARTS)]
    assert all(MIN_PART <= s <= MAX_PART for s in sizes)
    assert sizes == sorted(sizes)  # never shrinks as the upload goes on


def test_part_size_caps_at_five_gib() -> None:
    assert part_size_for(MAX_PARTS, 64 * MiB) == MAX_PART == 5 * GiB
    assert part_size_for(1, 6 * GiB) == MAX_PART


# ---------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    ("url", "bucket", "file_key", "root_dir_key"),
    [
        ("s3://bkt", "bkt", "x.txt", ""),
        ("s3://bkt/", "bkt", "x.txt", ""),
        ("s3://bkt/a/b", "bkt", "a/b/x.txt", "a/b/"),
        ("s3://bkt/a/b/", "bkt", "a/b/x.txt", "a/b/"),
        ("s3://bkt//a//b", "bkt", "a/b/x.txt", "a/b/"),
        ("s3://bkt/a/./c/../b", "bkt", "a/b/x.txt", "a/b/"),
        ("s3://my.bucket-1/data", "my.bucket-1", "data/x.txt", "data/"),
    ],
)
def test_open_s3_parses_bucket_and_prefix(
    url: str, bucket: str, file_key: str, root_dir_key: str
) -> None:
    options = S3Options(region="eu-west-1", part_size=16 * MiB)
    s3fs = open_s3(url, options)
    assert isinstance(s3fs, StreamingS3FS)
    assert s3fs.bucket == bucket
    assert s3fs.key("/x.txt") == file_key
    assert s3fs.dir_key("/") == root_dir_key
    assert s3fs.dir_key("/d") == root_dir_key + "d/"
    assert s3fs.options is options
    s3fs.close()


@pytest.mark.parametrize("url", ["s3://", "s3:///prefix", "s3://bkt/../escape"])
def test_open_s3_rejects_urls_without_a_usable_bucket_or_prefix(url: str) -> None:
    with pytest.raises(ValueError):
        open_s3(url, S3Options())


def test_options_defaults() -> None:
    o = S3Options()
    assert o.part_size == 8 * MiB and o.concurrency == 4
    assert o.checksum == "when_required"  # S3-compatible stores reject the new CRC default
    assert o.allow_dir_rename is False and o.rewrite_max_size == 0
    assert (o.server_side_encryption, o.sse_kms_key_id, o.storage_class, o.acl) == (None,) * 4
    assert o.content_type == "guess"


# ---------------------------------------------------------------- new objects' settings


@pytest.mark.parametrize(
    ("key", "content_type"),
    [
        ("table.csv", "text/csv"),
        ("pre/photo.jpg", "image/jpeg"),
        ("pre/PHOTO.JPG", "image/jpeg"),
        ("notes.txt", "text/plain"),
        ("README", "application/octet-stream"),
        ("blob.unknownext", "application/octet-stream"),
        ("pre/dir/", "application/octet-stream"),  # a directory marker
        ("backup.tar.gz", "application/octet-stream"),  # not x-tar: the bytes are gzip
        ("a.csv.dir/data", "application/octet-stream"),  # the name, not the folder
    ],
)
def test_content_type_is_guessed_from_the_name(key: str, content_type: str) -> None:
    assert guess_content_type(key) == content_type


def test_object_args_by_default_are_the_content_type_only() -> None:
    assert S3Options().object_args("pre/a.csv") == {"ContentType": "text/csv"}
    assert S3Options().object_args(None) == {}  # a copy: the source's type stays
    assert S3Options(content_type="none").object_args("pre/a.csv") == {}


def test_object_args_carry_every_setting() -> None:
    options = S3Options(
        server_side_encryption="aws:kms",
        sse_kms_key_id="alias/ftp",
        storage_class="STANDARD_IA",
        acl="bucket-owner-full-control",
    )
    settings = {
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "alias/ftp",
        "StorageClass": "STANDARD_IA",
        "ACL": "bucket-owner-full-control",
    }
    assert options.object_args("x.jpg") == {"ContentType": "image/jpeg", **settings}
    assert options.object_args(None) == settings


def test_fs_s3fs_uploads_ask_the_same_place() -> None:
    # fs-s3fs's append/read-write openbin modes upload with _get_upload_args.
    s3fs = StreamingS3FS("bkt", options=S3Options(region="eu-west-1", storage_class="GLACIER_IR"))
    assert s3fs._get_upload_args("a.csv") == {
        "ContentType": "text/csv",
        "StorageClass": "GLACIER_IR",
    }
    s3fs.close()


def test_allowed_values_come_from_botocore() -> None:
    classes = s3_enum("StorageClass")
    for name in ("STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA"):
        assert name in classes
    for name in ("INTELLIGENT_TIERING", "GLACIER", "DEEP_ARCHIVE", "GLACIER_IR", "EXPRESS_ONEZONE"):
        assert name in classes
    assert set(s3_enum("ObjectCannedACL")) >= {
        "private",
        "public-read",
        "public-read-write",
        "authenticated-read",
        "aws-exec-read",
        "bucket-owner-read",
        "bucket-owner-full-control",
    }


# ---------------------------------------------------------------- mounts.yaml


def _mount(**spec: object) -> dict[str, object]:
    config = config_from_dict({"mounts": {"/s3": spec}})
    return dict(config.mounts["/s3"].s3_options)


def _problems(**spec: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"mounts": {"/s3": spec}})
    return info.value.problems


def test_s3_keys_reach_the_options() -> None:
    options = _mount(
        fs="s3://bkt/p",
        endpoint_url="http://127.0.0.1:9000",
        region="eu-west-1",
        addressing_style="path",
        access_key_id="AK",
        secret_access_key="SK",
        session_token="T",
        part_size="16MiB",
        concurrency=8,
        checksum="when_supported",
        allow_dir_rename=True,
        rewrite_max_size="1 MiB",
        server_side_encryption="aws:kms",
        sse_kms_key_id="arn:aws:kms:eu-west-1:111122223333:key/k",
        storage_class="STANDARD_IA",
        acl="bucket-owner-full-control",
        content_type="none",
        folder_trust=0,
    )
    assert options == {
        "endpoint_url": "http://127.0.0.1:9000",
        "region": "eu-west-1",
        "addressing_style": "path",
        "access_key_id": "AK",
        "secret_access_key": "SK",
        "session_token": "T",
        "part_size": 16 * MiB,
        "concurrency": 8,
        "checksum": "when_supported",
        "allow_dir_rename": True,
        "rewrite_max_size": MiB,
        "server_side_encryption": "aws:kms",
        "sse_kms_key_id": "arn:aws:kms:eu-west-1:111122223333:key/k",
        "storage_class": "STANDARD_IA",
        "acl": "bucket-owner-full-control",
        "content_type": "none",
        "folder_trust": 0.0,
    }
    built = S3Options(**options)  # type: ignore[arg-type]
    assert built.part_size == 16 * MiB and built.rewrite_max_size == MiB
    assert built.object_args("a.csv") == {
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "arn:aws:kms:eu-west-1:111122223333:key/k",
        "StorageClass": "STANDARD_IA",
        "ACL": "bucket-owner-full-control",
    }


def test_unset_s3_keys_keep_the_option_defaults() -> None:
    assert _mount(fs="s3://bkt") == {}
    assert S3Options().folder_trust == 5.0


@pytest.mark.parametrize("value", [-1, 3601, "soon", True])
def test_folder_trust_is_seconds_within_an_hour(value: object) -> None:
    assert any("folder_trust" in p for p in _problems(fs="s3://bkt", folder_trust=value))


# ---------------------------------------------------------------- folder facts


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_session_goes_by_folder_facts_for_their_trust_only() -> None:
    clock = _Clock()
    memo = FolderMemo(clock)
    fs_a, fs_b = object(), object()
    facts = FolderFacts(frozenset({"sub"}), 5.0)
    memo.put(fs_a, "/d", facts)
    assert memo.get(fs_a, "/d") is facts
    assert memo.get(fs_b, "/d") is None  # (another mount's folder of that name)
    assert memo.get(fs_a, "/e") is None
    clock.now += 4.9
    assert memo.get(fs_a, "/d") is facts
    clock.now += 0.1
    assert memo.get(fs_a, "/d") is None  # trusted for 5 s, no longer


def test_folder_facts_are_forgotten_at_once_or_never_kept() -> None:
    memo = FolderMemo(_Clock())
    memo.put("fs", "/d", FolderFacts(None, 5.0))
    memo.forget()  # the session changed a folder itself
    assert memo.get("fs", "/d") is None
    memo.put("fs", "/d", FolderFacts(frozenset(), 0.0))  # folder_trust: 0
    assert memo.get("fs", "/d") is None


def test_a_file_the_session_stores_joins_the_facts_it_keeps() -> None:
    clock = _Clock()
    memo = FolderMemo(clock)
    memo.put("fs", "/d", FolderFacts(frozenset(), 5.0, frozenset({"a"})))
    memo.note_file("fs", "/d", "b")
    memo.note_file("fs", "/e", "c")  # (a folder it knows nothing of: nothing)
    facts = memo.get("fs", "/d")
    assert facts is not None and facts.files == {"a", "b"}
    assert memo.get("fs", "/e") is None
    clock.now += 5.0
    assert memo.get("fs", "/d") is None  # (noting a file trusts it no longer)


def test_a_folder_the_session_makes_is_known_at_once() -> None:
    clock = _Clock()
    memo = FolderMemo(clock)
    memo.put("fs", "/d", FolderFacts(frozenset({"a"}), 5.0, frozenset({"f"})))
    clock.now += 3.0
    made = FolderFacts(frozenset(), 5.0, frozenset())
    memo.note_folder("fs", "/d", "new", made)
    parent = memo.get("fs", "/d")
    assert parent is not None and parent.subfolders == {"a", "new"} and parent.files == {"f"}
    assert memo.get("fs", "/d/new") is made
    memo.note_folder("fs", "/", "top", made)  # (a parent it knows nothing of)
    assert memo.get("fs", "/top") is made and memo.get("fs", "/") is None
    clock.now += 2.0
    assert memo.get("fs", "/d") is None  # (the parent's trust did not grow)
    assert memo.get("fs", "/d/new") is made


def test_a_folder_the_session_changes_is_forgotten_with_what_is_below() -> None:
    memo = FolderMemo(_Clock())
    for path in ("/d", "/d/sub", "/d/sub/deeper", "/dx", "/e"):
        memo.put("fs", path, FolderFacts(frozenset(), 5.0))
    memo.put("other", "/d", FolderFacts(frozenset(), 5.0))
    memo.forget_folder("fs", "/d")
    assert [p for p in ("/d", "/d/sub", "/d/sub/deeper", "/dx", "/e") if memo.get("fs", p)] == [
        "/dx",
        "/e",
    ]
    assert memo.get("other", "/d") is not None  # (another mount's folder)
    memo.forget_folder("fs", "/")
    assert memo.get("fs", "/dx") is None and memo.get("fs", "/e") is None


def test_folder_facts_stay_bounded() -> None:
    memo = FolderMemo(_Clock())
    for i in range(FOLDER_MEMO_SIZE + 10):
        memo.put("fs", f"/d{i}", FolderFacts(frozenset(), 5.0))
    assert len(memo._facts) <= FOLDER_MEMO_SIZE


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (5 * MiB, 5 * MiB),
        ("5MiB", 5 * MiB),
        ("8 MiB", 8 * MiB),
        ("5GiB", 5 * GiB),
        ("6000000", 6_000_000),
    ],
)
def test_part_size_accepts_bytes_or_units(value: object, size: int) -> None:
    assert _mount(fs="s3://bkt", part_size=value)["part_size"] == size


@pytest.mark.parametrize("value", ["1MiB", 5 * MiB - 1, "6GiB", "8 furlongs", True, -1])
def test_part_size_out_of_s3_limits_is_rejected(value: object) -> None:
    (problem,) = _problems(fs="s3://bkt", part_size=value)
    assert problem.startswith("<dict>: mounts./s3.part_size: ")


def test_part_size_error_says_the_minimum() -> None:
    (problem,) = _problems(fs="s3://bkt", part_size="1MiB")
    assert f">= {5 * MiB}" in problem


_S3_ONLY = {
    "endpoint_url": "http://x",
    "region": "r",
    "part_size": "8MiB",
    "allow_dir_rename": True,
    "rewrite_max_size": 0,
    "server_side_encryption": "AES256",
    "storage_class": "STANDARD_IA",
    "acl": "private",
    "content_type": "guess",
}


@pytest.mark.parametrize("key", list(_S3_ONLY))
@pytest.mark.parametrize("url", ["mem://", "osfs://./data"])
def test_s3_keys_on_other_filesystems_are_rejected(key: str, url: str) -> None:
    value = _S3_ONLY[key]
    (problem,) = _problems(fs=url, **{key: value})
    assert problem == f"<dict>: mounts./s3: {key}: only for s3:// mounts"


def test_access_key_without_secret_is_rejected() -> None:
    (problem,) = _problems(fs="s3://bkt", access_key_id="AK")
    assert "access_key_id and secret_access_key go together" in problem
    (problem,) = _problems(fs="s3://bkt", secret_access_key="SK")
    assert "access_key_id and secret_access_key go together" in problem


@pytest.mark.parametrize("sse", ["aws:kms", "aws:kms:dsse"])
def test_kms_key_with_either_kms_encryption_is_accepted(sse: str) -> None:
    spec = {"server_side_encryption": sse, "sse_kms_key_id": "alias/k"}
    assert _mount(fs="s3://bkt", **spec) == spec


@pytest.mark.parametrize("sse", [None, "AES256"])
def test_kms_key_without_kms_encryption_is_rejected(sse: str | None) -> None:
    spec = {"fs": "s3://bkt", "sse_kms_key_id": "alias/k"}
    if sse:
        spec["server_side_encryption"] = sse
    (problem,) = _problems(**spec)
    assert problem == (
        "<dict>: mounts./s3: sse_kms_key_id: only with server_side_encryption: "
        "aws:kms or aws:kms:dsse"
    )


@pytest.mark.parametrize(
    ("key", "values"),
    [
        ("server_side_encryption", ["AES256", "aws:kms", "aws:kms:dsse"]),
        ("storage_class", ["STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING"]),
        ("storage_class", ["GLACIER", "DEEP_ARCHIVE", "GLACIER_IR", "REDUCED_REDUNDANCY"]),
        ("acl", ["private", "public-read", "bucket-owner-read", "bucket-owner-full-control"]),
        ("content_type", ["guess", "none"]),
    ],
)
def test_good_object_settings_are_accepted(key: str, values: list[str]) -> None:
    for value in values:
        assert _mount(fs="s3://bkt", **{key: value}) == {key: value}


def test_url_parameters_are_rejected_for_mount_keys() -> None:
    (problem,) = _problems(fs="s3://bkt/p?endpoint_url=http://x")
    assert "use the mount's keys" in problem


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("concurrency", 0, "expected a number >= 1"),
        ("concurrency", 65, "expected a number <= 64"),
        ("addressing_style", "sideways", "input should be 'auto', 'path' or 'virtual'"),
        ("checksum", "always", "input should be 'when_required' or 'when_supported'"),
        ("rewrite_max_size", -1, "expected a number >= 0"),
        (
            "server_side_encryption",
            "aes256",
            "input should be 'AES256', 'aws:kms' or 'aws:kms:dsse'",
        ),
        (
            "server_side_encryption",
            "aws:fsx",
            "input should be 'AES256', 'aws:kms' or 'aws:kms:dsse'",
        ),
        ("storage_class", "standard_ia", "expected one of STANDARD, REDUCED_REDUNDANCY, "),
        ("storage_class", "COLD", "expected one of STANDARD, "),
        ("storage_class", 1, "expected a string, got 1"),
        ("acl", "public", "expected one of private, public-read, public-read-write, "),
        ("content_type", "text/plain", "input should be 'guess' or 'none'"),
        ("content_type", True, "input should be 'guess' or 'none'"),
        ("sse_kms_key_id", "", "string should have at least 1 character"),
        ("unknown_key", 1, "unknown key"),
    ],
)
def test_bad_s3_values_are_rejected(key: str, value: object, expected: str) -> None:
    (problem,) = _problems(fs="s3://bkt", **{key: value})
    assert problem.startswith(f"<dict>: mounts./s3.{key}: {expected}")
