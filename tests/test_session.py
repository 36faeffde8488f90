"""The ONNX session is single-threaded and does not spin (DESIGN §8.1)."""

from heimdall.inference.session import session_options


def test_session_options():
    options = session_options()
    assert options.intra_op_num_threads == 1
    assert options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"
