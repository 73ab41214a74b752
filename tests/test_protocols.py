"""The class table and the three protocols of METHOD.md section 2; custom class tables."""
import pytest

from dataset import protocols as P
from utils.config import load_config


def test_41_classes_with_codes():
    assert P.NUM_CLASSES == 41 and [c.index for c in P.CLASSES] == list(range(41))
    codes = {c.index: c.code for c in P.CLASSES}
    assert codes[0] == "REAL" and codes[1] == "S1" and codes[21] == "S6" and codes[25] == "S10"
    assert codes[6] == "R1" and codes[26] == "R6" and codes[31] == "R11" and codes[40] == "R12"
    assert codes[11] == "E1" and codes[15] == "E5" and codes[38] == "E6"
    assert codes[16] == "G1" and codes[32] == "G6" and codes[37] == "G11" and codes[39] == "G12"
    assert P.get_class(40).folder_name == "40_Reenact_OneShot"
    assert P.get_class(1).folder_name == "1_Swap_Deepfakes"


def test_known_lists():
    assert P.known_classes(1) == (0, 1, 3, 6, 8, 11, 14, 17, 19, 21, 23, 25, 27, 29, 31, 33, 35, 37, 39)
    assert P.known_classes(2) == (0, 1, 3, 6, 8, 11, 14, 21, 23, 25, 27, 29, 31)
    assert P.known_classes(3) == (0, 1, 3, 5, 6, 7, 8, 10, 11, 13, 14, 17, 18, 19, 20, 21, 23, 24, 25, 26,
                                  27, 29, 31, 33, 35, 36, 37, 38, 39)
    assert [len(P.known_classes(p)) for p in (1, 2, 3)] == [19, 13, 29]
    assert [len(P.novel_classes(p)) for p in (1, 2, 3)] == [22, 28, 12]


def test_label_map_known_first_then_novel_ascending():
    mapping = P.label_map(2)
    known, novel = P.known_classes(2), P.novel_classes(2)
    assert [mapping[c] for c in known] == list(range(13))
    assert [mapping[c] for c in novel] == list(range(13, 41))
    assert mapping[2] == 13 and mapping[4] == 14 and mapping[40] == 40
    assert sorted(mapping.values()) == list(range(41))


def test_the_shipped_table_is_a_data_file():
    table = P.load_table(P.OWDFA40_FILE)
    assert table.classes == P.CLASSES and table.protocols == P.PROTOCOLS and table.name == "OWDFA-40"
    assert [c.index for c in P.CLASSES if c.is_real] == [0]


def test_unknown_protocol_is_one_line_naming_the_choices():
    with pytest.raises(P.ClassTableError, match=r"protocol=4 .* choose 1, 2 or 3"):
        P.label_space(load_config(None, ["protocol=4"]))


CUSTOM = """index,code,family,method,known_in
0,REAL,Real,Real,1
3,A,Swap,Alpha,1
5,,Edit,Beta,
8,C,Generate,Gamma,1
"""


def test_custom_table_and_known_set(tmp_path):
    path = tmp_path / "classes.csv"
    path.write_text(CUSTOM)
    space = P.label_space(load_config(None, [f"classes_file={path}", "known_classes=8,0"]))
    assert (space.known, space.novel, space.num_classes) == ((0, 8), (3, 5), 4)
    assert space.label_map == {0: 0, 8: 1, 3: 2, 5: 3}
    assert space.label_names == ["REAL Real", "C Gamma", "A Alpha", "Beta Beta"]  # empty code: the method
    protocol = P.label_space(load_config(None, [f"classes_file={path}", "protocol=1"]))
    assert protocol.known == (0, 3, 8) and protocol.name == "protocol 1"
    with pytest.raises(P.ClassTableError, match=r"\[4\], which the classes.csv class table does not have"):
        P.label_space(load_config(None, [f"classes_file={path}", "known_classes=0,4"]))
    with pytest.raises(P.ClassTableError, match="protocol=2 is not defined .* choose 1,"):
        P.label_space(load_config(None, [f"classes_file={path}", "protocol=2"]))


@pytest.mark.parametrize("text, words", [
    ("idx,family,method\n0,Real,Real\n", "lacks the column(s) ['index']"),
    ("index,family,method\nx,Real,Real\n1,Swap,A\n", "line 2: index and known_in must be integers"),
    ("index,family,method\n0,Real,Real\n0,Swap,A\n", "lines 2, 3: the same index 0; give every class its own"),
    ("index,family,method\n0,Real,R\n\n1,Swap,A\n7,Swap,B\n1,Edit,C\n", "lines 4, 6: the same index 1"),
    ("index,code,family,method\n0,,Real,R\n1,S1,Swap,A\n2,S1,Edit,A\n", "lines 3, 4: the same name (code and "
                                                                          "method) 'S1 A'; change the code or"),
    ("index,family,method\n0,Real,R\n", "needs at least 2 classes, got 1"),
    ("family,method,index\nReal,R,0\nSwap,A\n", "line 3: index and known_in must be integers, got None"),
    ("index,family,method\n0,Real,\n1,Swap,A\n", "line 2: needs an index >= 0, a family and a method"),
    ("index,family,method,known_labelled\n0,Real,R,10\n1,Swap,A,\n", "line 2: give known_labelled >= 1 and "
                                                                      "known_unlabelled >= 0 together"),
    ("index,family,method,novel_unlabelled\n0,Real,R,many\n1,Swap,A,\n", "line 2: known_labelled, "
                                                                          "known_unlabelled, novel_unlabelled must"),
    ("index,family,method,novel_unlabelled\n0,Real,R,0\n1,Swap,A,\n", "novel_unlabelled >= 1 (or empty)"),
    ("index,family,method,folder\n0,Real,R,a/b\n1,Swap,A,\n", "must name a distinct folder for every class"),
    ("index,family,method,folder\n0,Real,R,a/b\n1,Swap,A,a/b\n", "lines 2, 3: the same folder 'a/b'; the folder "
                                                                     "column must name a distinct folder for every"),
    ("index,family,method,folder\n0,Real,R,../b\n1,Swap,A,c\n", "line 2: folder '../b' must be a path below"),
    ("index,family,method,folder\n0,Real,R,a\n1,Swap,A,/abs/c\n", "line 3: folder '/abs/c' must be a path below"),
])
def test_bad_table_is_one_line(tmp_path, text, words):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(P.ClassTableError) as err:
        P.load_table(path)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_a_bom_and_crlf_read_like_plain_utf8(tmp_path):
    plain, excel = tmp_path / "plain.csv", tmp_path / "excel.csv"
    plain.write_text(CUSTOM)
    excel.write_bytes(CUSTOM.replace("\n", "\r\n").encode("utf-8-sig"))  # what Excel's "CSV UTF-8" writes
    assert excel.read_bytes().startswith(b"\xef\xbb\xbf")
    assert P.load_table(excel).classes == P.load_table(plain).classes
    assert P.load_table(excel).protocols == P.load_table(plain).protocols == {1: (0, 3, 8)}


def test_a_table_not_in_utf8_is_one_line(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("index,family,method\n0,Real,Réel\n1,Swap,A\n".encode("latin-1"))
    with pytest.raises(P.ClassTableError, match=r"is not UTF-8 text .*; save it as CSV UTF-8$"):
        P.load_table(path)


def test_role_counts_scale_round_half_up_and_fall_back_to_the_config():
    cls = P.ForgeryClass(1, "A", "Swap", "A", "Swap/A", known_labelled=1500, known_unlabelled=500,
                         novel_unlabelled=1500)
    assert cls.role_counts(True) == (1500, 500) and cls.role_counts(False) == (0, 1500)
    assert cls.role_counts(True, 0.01) == (15, 5) and cls.role_counts(False, 0.001) == (0, 2)  # 1.5 -> 2
    assert cls.role_counts(True, 0.0001) == (1, 1)  # a count above 0 stays at least 1
    assert P.ForgeryClass(2, "B", "Swap", "B", novel_unlabelled=9).role_counts(True) is None  # config budgets
    assert P.get_class(1).role_counts(False) is None and P.OWDFA40.class_folders() is None
    assert cls.folder_name == "Swap/A" and P.get_class(1).folder_name == "1_Swap_Deepfakes"
