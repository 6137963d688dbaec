# The Python client (clients/python/hafl_client), a second implementation of the protocol written
# from messages/PROTOCOL.md. Each test needs a python3 that imports zmq and msgpack (the Debian
# packages python3-zmq and python3-msgpack give the system interpreter both) and reports a skip
# (exit 77) without one.
# - python_client_codec: the codec against PROTOCOL.md's worked examples and a table of malformed
#   messages, and against a C client node that joins a fake server (its bytes re-encoded exactly,
#   the same error codes from both decoders, the synthetic base digest). A few seconds.
# - python_client_federation: a federation over tcp in which the Python client plays one client
#   and is counted in every round it was not dropped, across a rejoin with its session. About 2 s.
# - python_client_hostile: a hostile peer replays malformed frames, NaN tensors, other versions,
#   huge lengths, bursts of HELLOs, takeovers, a second evaluator, n_samples above the cap,
#   strangers' UPDATEs and a forged `final` event; the final digest must be the undisturbed one.
#   About 10 s.
# - python_client_hostile_curve: the same with CURVE (`hafl keygen --clients 6`, one certificate
#   per client bound to its index): stolen certificates of a live client and of the evaluator
#   (SESSION), a certificate claiming another's place (AUTH, binding-refused), one outside the
#   allow-list and a peer without CURVE (handshake refused, peer-refused), forged `final` events
#   at the logger (log-refused); the final digest must be the clean CURVE run's. About 10 s.
# - python_client_hijack: the same federation against a peer that takes a live client's ROUTER
#   routing id (ZMQ_ROUTING_ID, which ZMQ_ROUTER_HANDOVER on the server's ROUTER would let take
#   the connection over; the server leaves it off) and trains in its place without a HELLO; the
#   digest must be the undisturbed one. About 10 s.
hafl_python_with(hafl_pyclient_python "zmq, msgpack")
if(hafl_pyclient_python)
  foreach(name codec federation hostile)
    add_test(NAME python_client_${name}
             COMMAND "${hafl_pyclient_python}" ${CMAKE_CURRENT_SOURCE_DIR}/python_client_${name}.py)
  endforeach()
  add_test(NAME python_client_hostile_curve
           COMMAND "${hafl_pyclient_python}" ${CMAKE_CURRENT_SOURCE_DIR}/python_client_hostile.py
                   --curve)
  add_test(NAME python_client_hijack
           COMMAND "${hafl_pyclient_python}" ${CMAKE_CURRENT_SOURCE_DIR}/python_client_hostile.py
                   --routing-id-takeover)
  # No bytecode caches: the tests import the client from the source tree.
  set_tests_properties(python_client_codec python_client_federation python_client_hostile
      python_client_hostile_curve python_client_hijack
      PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77 LABELS "bus;python"
      ENVIRONMENT "HAFL_SOURCE_DIR=${CMAKE_SOURCE_DIR};HAFL_BINARY=$<TARGET_FILE:hafl>;PYTHONDONTWRITEBYTECODE=1")
endif()
