"""Block parsing against the per-line parser it replaces, and block reading of byte ranges."""
import gzip
import random

import pytest

from fsdnet_tf.config import ColumnConfig, DatasetConfig, LabelConfig, SplitConfig, validate_dataset
from fsdnet_tf.data import readers
from pipelines import block_parse
from pipelines.reading import byte_ranges, read_blocks

COLUMNS = (ColumnConfig("label", "label"), ColumnConfig("n1", "integer"), ColumnConfig("c1", "categorical"),
           ColumnConfig("skip", "ignore"), ColumnConfig("n2", "integer"), ColumnConfig("c2", "categorical"))
INTEGERS = ["", "12", "-3", "007", "1.5", "x", " 7", "-", "٣"]
CATEGORIES = ["", "ab", "é", "a b", "1", " "]
LABELS = ["0", "1", " 1", "1 ", "2", "", "x"]


def parser(delimiter: str, **label) -> readers.DelimitedParser:
    ds = validate_dataset(DatasetConfig(name="t", format="tsv" if delimiter == "\t" else "csv", columns=COLUMNS,
                                        splits=SplitConfig(files={"train": "t", "valid": "v", "test": "s"}),
                                        label=LabelConfig(**(label or {"positive": ["1"], "negative": ["0"]}))))
    return readers.DelimitedParser(ds)


def random_line(rng: random.Random, delimiter: str) -> bytes:
    roll = rng.random()
    if roll < 0.03:
        return rng.choice([b"", b"   ", delimiter.encode() * 5])
    cells = [rng.choice(LABELS), rng.choice(INTEGERS), rng.choice(CATEGORIES), "z",
             rng.choice(INTEGERS), rng.choice(CATEGORIES)]
    if roll < 0.08:
        cells = cells[:rng.randrange(len(cells))] if rng.random() < 0.5 else cells + ["extra"]
    return delimiter.join(cells).encode()


def blocks(rng: random.Random, delimiter: str) -> list[list[bytes]]:
    clean = [[random_line(rng, delimiter) for _ in range(300)] for _ in range(4)]
    quoted = [random_line(rng, delimiter) for _ in range(50)] + [f'1{delimiter}"4"{delimiter}a{delimiter}z'
                                                                 f'{delimiter}5{delimiter}"b"'.encode()]
    undecodable = [random_line(rng, delimiter) for _ in range(50)] + [b"1\t5\t\xff\tz\t6\tb"]
    line_end = [random_line(rng, delimiter) for _ in range(50)] + [f"1{delimiter}5{delimiter}a{delimiter}z"
                                                                   f"{delimiter}6{delimiter}b\r".encode()]
    return clean + [quoted, undecodable, line_end]


def as_lists(block: block_parse.ParsedBlock):
    return [c.to_pylist() for c in block.columns], block.labels.tolist(), block.rejected


@pytest.mark.parametrize("delimiter", ["\t", ","])
@pytest.mark.parametrize("label", [{}, {"threshold": 1.0}])
def test_block_parsing_keeps_refuses_and_words_every_line_as_the_line_parser(delimiter, label, monkeypatch):
    parse = parser(delimiter, **label)
    rng = random.Random(7)
    checked_rejections, fallbacks = 0, []
    reference_parse = block_parse.parse_one_by_one
    monkeypatch.setattr(block_parse, "parse_one_by_one", lambda lines, p: fallbacks.append(1) or reference_parse(lines, p))
    for lines in blocks(rng, delimiter):
        fast, reference = block_parse.parse_block(lines, parse), reference_parse(lines, parse)
        assert as_lists(fast) == as_lists(reference)
        checked_rejections += len(reference.rejected)
    assert checked_rejections > 100    # the random lines do exercise the refusals
    assert len(fallbacks) == 3         # only the quoted, undecodable and line-end blocks are parsed line by line


def test_block_parsing_golden_block():
    parse = parser("\t")
    parsed = block_parse.parse_block([b"1\t5\ta\tz\t\tb", b"0\t1.5\ta\tz\t2\tb", b"2\t3\tc\tz\t4\td",
                                      b"0\t-2\t\tz\t9\te", b""], parse)
    assert [c.to_pylist() for c in parsed.columns] == [[b"5", b"-2"], [b"a", b""], [b"", b"9"], [b"b", b"e"]]
    assert parsed.labels.tolist() == [1, 0]
    assert parsed.rejected == [(1, "column n1: '1.5' is not an integer"),
                               (2, "label '2' is neither positive ['1'] nor negative ['0']"), (4, "empty line")]


def write_lines(path, lines, ending=b"\n", final=True):
    data = ending.join(lines) + (ending if final else b"")
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


@pytest.mark.parametrize("ending, final", [(b"\n", True), (b"\r\n", True), (b"\n", False)])
@pytest.mark.parametrize("block_bytes", [7, 64, 1 << 20])
def test_byte_ranges_read_in_blocks_give_every_line_once(tmp_path, ending, final, block_bytes):
    rng = random.Random(3)
    lines = [b"header"] + [bytes(rng.choice(b"abc\t") for _ in range(rng.randrange(0, 40))) for _ in range(500)]
    path = tmp_path / "log.tsv"
    write_lines(path, lines, ending, final)
    for range_bytes in (13, 1000, 1 << 20):
        read = [line for task in byte_ranges(str(path), range_bytes)
                for block in read_blocks(task, True, block_bytes) for line in block]
        assert read == lines[1:]


def test_a_compressed_file_is_read_whole_in_blocks(tmp_path):
    lines = [f"{i}\tx".encode() for i in range(2000)]
    path = tmp_path / "log.tsv.gz"
    write_lines(path, lines)
    assert byte_ranges(str(path)) == [(str(path), 0, -1, 0, 1)]
    read = list(read_blocks(byte_ranges(str(path))[0], False, 1000))
    assert len(read) > 1 and [line for block in read for line in block] == lines


@pytest.mark.parametrize("stripes", [2, 3])
@pytest.mark.parametrize("final", [True, False])
def test_the_stripes_of_a_compressed_file_share_its_blocks(tmp_path, stripes, final):
    """Each stripe decompresses the whole file and keeps every stripes-th block: together they
    read every line once, header skipped once, and each stripe gets some."""
    lines = [b"header"] + [f"{i}\t{'x' * (i % 37)}".encode() for i in range(3000)]
    path = tmp_path / "log.tsv.gz"
    write_lines(path, lines, final=final)
    tasks = byte_ranges(str(path), stripes=stripes)
    assert [(t.stripe, t.stripes) for t in tasks] == [(k, stripes) for k in range(stripes)]
    blocks = [list(read_blocks(task, True, 1000)) for task in tasks]
    assert all(len(b) > 1 for b in blocks)
    interleaved = [line for group in zip(*[b + [[]] * (max(map(len, blocks)) - len(b)) for b in blocks])
                   for block in group for line in block]
    assert interleaved == lines[1:]


def test_stripes_do_not_cut_an_uncompressed_file_twice(tmp_path):
    path = tmp_path / "log.tsv"
    write_lines(path, [f"{i}\tx".encode() for i in range(2000)])
    assert byte_ranges(str(path), 4000, stripes=2) == byte_ranges(str(path), 4000)
    assert all(task.stripes == 1 for task in byte_ranges(str(path), 4000, stripes=2))


@pytest.mark.parametrize("seed, ratios", [(2023, (0.8, 0.1, 0.1)), (7, (0.5, 0.25, 0.25)), (1, (0.0, 0.5, 0.5))])
def test_split_indices_are_the_seeded_hash_of_each_line(seed, ratios):
    """One comprehension per block, the same assignment as the documented rule line by line."""
    import hashlib
    from pipelines.reading import split_indices, split_of

    def rule(line: bytes) -> int:
        u = int.from_bytes(hashlib.blake2b(line, digest_size=8, key=str(seed).encode()).digest(), "little") / 2.0 ** 64
        return 0 if u < ratios[0] else (1 if u < ratios[0] + ratios[1] else 2)

    rng = random.Random(seed)
    lines = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 30))) for _ in range(20000)]
    expected = [rule(line) for line in lines]
    assert split_indices(lines, seed, ratios) == expected
    assert [split_of(line, seed, ratios) for line in lines[:500]] == expected[:500]
    assert set(expected) == ({1, 2} if ratios[0] == 0 else {0, 1, 2})
