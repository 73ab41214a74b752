"""The class table and the three protocols of METHOD.md section 2."""
from dataset import protocols as P


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
