"""Golden content ids: values hashed correctly by the first hash format keep their ids.

Stored calls are found by these ids, so a change here turns every stored call
on such a value into a miss. Values whose ids had to change (because the old
encoding merged values that functions tell apart) are listed in
``test_hashing_identity.py``, not here.
"""

from __future__ import annotations

import json
from pathlib import Path

from golden_values import golden_values

from memostore import content_id

from helpers import run_python

PINNED = {
    'none': '3bcf3019bc2fc54f3f1365fd6238a868',
    'true': '3e05a4b7a0380d1258b163a329603c88',
    'false': 'ce792cb4fc1c8dd2df91b12927c621f2',
    'int_0': 'fcc7e844312ffbe2996f03d5fdbd2180',
    'int_neg': 'c186727bd6b6ad9f412039c8e01f6374',
    'int_big': '0a1893d00a4f41f06aab553bb01c29f6',
    'int_big_neg': '727897d103d7ded04bdbf44cdd68491b',
    'float': '5f113cd116ce9485795687c8978d85ca',
    'float_neg_zero': '5d184a7e8f0f1f5616c3118387bab0e5',
    'float_nan': '289677ab1f196a04d7cf4ddf4263416f',
    'float_inf': '9e1cec3138dc34d82a19435b105881f4',
    'complex': 'b3db17840d14b4cb7641e03a18fd919b',
    'str_empty': '1782beb094939fbce6bd6a8e738dd2f7',
    'str': '368886ca668eb4988cfd17b5a0c05f68',
    'str_unicode': '9f0fec7260e607aebf9634b9b53a8050',
    'bytes_empty': 'bb20976731956c6c8d3a416c7bda45a3',
    'bytes': 'ed1155d3002137188c96554ba10a3b28',
    'list_empty': '4c04f956365acd15e1b20957455db505',
    'list': '0ce9dd91d4a964475aec60c6ca291ed8',
    'tuple': 'e8d2581cce36b8739775ee7f353a9728',
    'tuple_empty': '83b5a70630162cb4a9241114813be00d',
    'dict': '55b44ea1d7f4be35ffea83cabd32708e',
    'dict_int_keys': 'a14fb1665921dc647b5d4bb907614557',
    'dict_nested': '4ffc1fc1d7ad1e5321f0bbd818dd79c0',
    'set': '9988ef32dc6368d565170954e443455c',
    'set_str': '6aeefc5da7fdffec6be493cd0d2927eb',
    'frozenset': '69af7e5e99fe4fa4d8185a30187e7e61',
    'array_int64': '05c941a761288c1d32edf365ce633b3b',
    'array_float32': '32fb042e4f3fde50a5f92d3d1aecf3c8',
    'array_bool': '2ca366785420195b2c26b574ee5ab36f',
    'array_uint8': '3d19cf7bbf8393a46d93e47237fda51a',
    'array_complex': '71b5bde285a96859eccb6f5a48d490d9',
    'array_str': '65df37dff73830989234a0972a6b892d',
    'array_datetime': 'c9b23121e394e179a8bbd8cbc9ee3fd3',
    'array_fortran': '56080699db0263f200067534aa29b699',
    'array_structured': 'f0e91aff9a6905b56c8de167d9face14',
    'array_object': '30a6090489fcb83711839ea1d39b4a8c',
    'array_empty': 'c7f99a02f424e4d07f926e7065aa7ce2',
    'np_float64': 'c04443af7ecb4ff7848e5ae352c304cd',
    'np_int32': '2dcb614958decc654897b7993edd6c78',
    'np_bool': '56553c12e72644cdcfa6e27779a24e44',
    'frame': 'edabe962e0aa7449ccf88e012498aae9',
    'frame_str': '7d1ec046971c4949fa81a09cccdcb127',
    'series': 'ddf0c83c84c614ee860a3a93a7bc551d',
    'series_str_index': 'c2172ff570899b5d23bfe5f7c332100f',
    'index': '43dbaa3cc908aef96d4a299e17bdcfa1',
    'range_index': '7f702a9701c05bad51f318956b654703',
    'datetime_index_nofreq': '966b812c802c8d213d85b750a3b7340d',
    'frame_dates': '1841a7f592844ef9860ff7ef06164ee3',
    'dataclass': '4f67ddc9119f8f33b73590dcf7a7f0b6',
    'enum': '67e5a4f403ec9fd4ac41e2f242d4bdad',
    'plain_object': '050f52716db2cbe574bf3fd8e9c9034f',
    'date': '9584e5ace8b5ff1a9cbf901e0e831b64',
    'datetime': '33d12ffd478995c63d2321b5d0d33759',
    'timedelta': '3e64b0a972768ba47f19b836f506e632',
    'decimal': '2e89a8cdeff57c1b7277b2c28f49730c',
    'fraction': 'ecb6b4cc4dd18206d8c6f544e5dfc429',
    'uuid': '407f3aabb135f683f631562c143ef652',
    'timestamp': 'ab78b83cf6c0395313429a5a194d4d0c',
    'range': '577fd567067192e3c64c9ed7019b9b20',
    'slice': '54c7fb7d92ca1dd7919d97c725bf1b3b',
}


def test_golden_ids_do_not_change():
    computed = {name: content_id(value) for name, value in golden_values().items()}
    assert computed == PINNED


def test_golden_ids_agree_in_processes_with_other_hash_seeds(tmp_path):
    code = f"""
        import json, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from memostore import content_id
        from golden_values import golden_values
        print(json.dumps({{k: content_id(v) for k, v in golden_values().items()}}))
    """
    for seed in ("1", "2"):
        assert json.loads(run_python(code, tmp_path, env={"PYTHONHASHSEED": seed})) == PINNED
