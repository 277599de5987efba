"""Each raw format parsed line by line, good and bad rows."""
import pathlib

import pytest

from fsdnet_tf.config import ColumnConfig, DatasetConfig, LabelConfig, SplitConfig, validate_dataset
from fsdnet_tf.data import readers

FILES = SplitConfig(files={"train": "t", "valid": "v", "test": "s"})


def dataset(**kw):
    return validate_dataset(DatasetConfig(**{"name": "t", "splits": FILES, **kw}))


def csv_dataset(**kw):
    cols = (ColumnConfig("label", "label"), ColumnConfig("a", "categorical"), ColumnConfig("n", "integer"))
    return dataset(format="csv", columns=cols, **kw)


def test_csv_rows_and_quoting():
    parse = readers.make_parser(csv_dataset())
    assert parse(b"1,x,5") == (["x", "5"], 1)
    assert parse(b'0,"a,b",') == (["a,b", ""], 0)
    assert parse(b"0,x,-3\r") == (["x", "-3"], 0)


@pytest.mark.parametrize("line, reason", [
    (b"1,x", "expected 3 columns, found 2"),
    (b"1,x,5,6", "expected 3 columns, found 4"),
    (b"2,x,5", "label '2' is neither positive"),
    (b"1,x,5.5", "column n: '5.5' is not an integer"),
    (b"1,x,abc", "column n: 'abc' is not an integer"),
    (b"1,\xff\xfe,5", "undecodable bytes"),
    (b"", "empty line"),
    (b'1,"x,5', "malformed quoting"),
])
def test_bad_csv_rows_have_reasons(line, reason):
    with pytest.raises(readers.BadRow, match=reason):
        readers.make_parser(csv_dataset())(line)


def test_tsv_and_threshold_label():
    cols = (ColumnConfig("rating", "label"), ColumnConfig("a", "categorical"))
    parse = readers.make_parser(dataset(format="tsv", columns=cols, label=LabelConfig(threshold=4)))
    assert parse(b"4\tq") == (["q"], 1) and parse(b"3.5\tq") == (["q"], 0)
    with pytest.raises(readers.BadRow, match="not a number"):
        parse(b"four\tq")


def test_criteo_raw_line():
    ds = dataset(format="criteo", splits=SplitConfig(source="train.txt", ratios=(0.8, 0.1, 0.1)))
    cells = ["1", "", "-1"] + ["7"] * 11 + ["68fd1e64"] * 25 + [""]
    values, label = readers.make_parser(ds)("\t".join(cells).encode())
    assert label == 1 and len(values) == 39 and values[0] == "" and values[1] == "-1" and values[-1] == ""


def test_libsvm_field_map():
    cols = (ColumnConfig("label", "label"), ColumnConfig("user", "categorical"), ColumnConfig("item", "categorical"))
    ds = dataset(format="libsvm", columns=cols, field_map={"user": (0, 9), "item": (10, 99)})
    parse = readers.make_parser(ds)
    assert parse(b"1 3:1 57:1") == (["3", "57"], 1)
    assert parse(b"0 57:1") == (["", "57"], 0)
    for line, reason in [(b"1 3:1 4:1", "field user has two indices"), (b"1 300:1", "outside every field_map"),
                         (b"1 3", "not index:value"), (b"1 3:x", "value is not a number")]:
        with pytest.raises(readers.BadRow, match=reason):
            parse(line)


def test_movielens_join():
    ds = dataset(format="movielens", label=LabelConfig(threshold=4), splits=SplitConfig(ratios=(0.8, 0.1, 0.1)))
    users = readers.read_movielens_table([b"1::F::1::10::48067"], "latin-1", 5, "users.dat")
    movies = readers.read_movielens_table(["1193::One Flew (1975)::Drama".encode("latin-1")], "latin-1", 3, "movies.dat")
    parse = readers.make_parser(ds, (users, movies))
    assert parse(b"1::1193::5::978300760") == (["1", "1193", "F", "1", "10", "48067", "Drama"], 1)
    with pytest.raises(readers.BadRow, match="user '2' is not in users.dat"):
        parse(b"2::1193::5::978300760")
    with pytest.raises(ValueError, match="users.dat line 1: expected 5"):
        readers.read_movielens_table([b"1::F"], "latin-1", 5, "users.dat")


ML1M = pathlib.Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "movielens1m"


@pytest.mark.skipif(not (ML1M / "ctr" / "train.csv").is_file(), reason=f"{ML1M} is absent")
def test_movielens1m_presets_read_the_same_features_and_label_for_the_same_ratings():
    """The raw .dat join (movielens1m) and the fixed CTR split (movielens1m_ctr) agree row by row."""
    from fsdnet_tf.config import load_config
    raw_ds, ctr_ds = (load_config(name).dataset for name in ("movielens1m", "movielens1m_ctr"))
    fields = ["UserID", "Gender", "Age", "Occupation", "MovieID"]
    assert [c.name for c in raw_ds.feature_columns] == ["UserID", "MovieID", "Gender", "Age", "Occupation"]
    assert sorted(c.name for c in ctr_ds.feature_columns) == sorted(fields)
    tables = tuple(readers.read_movielens_table((ML1M / name).read_bytes().splitlines(), "latin-1", width, name)
                   for name, width in (("users.dat", 5), ("movies.dat", 3)))
    raw_parse, ctr_parse = readers.make_parser(raw_ds, tables), readers.make_parser(ctr_ds)
    ctr_lines = (ML1M / "ctr" / "train.csv").read_bytes().splitlines()[1:301]
    by_rating = {}
    for line in ctr_lines:
        values, label = ctr_parse(line)
        row = dict(zip([c.name for c in ctr_ds.feature_columns], values))
        by_rating[(row["UserID"], row["MovieID"])] = (row, label)
    matched = 0
    ratings = next(ML1M.glob("ratings*.dat"))
    for line in ratings.read_bytes().splitlines():
        user, movie = line.split(b"::")[:2]
        key = (user.decode(), movie.decode())
        if key in by_rating:
            values, label = raw_parse(line)
            row = dict(zip([c.name for c in raw_ds.feature_columns], values))
            assert (row, label) == by_rating[key], key
            assert label == (int(line.split(b"::")[2]) >= 4)
            matched += 1
    assert matched == len(by_rating) == 300           # every sampled CTR row is one rating of the raw file
