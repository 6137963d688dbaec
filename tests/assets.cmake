# Asset registry tests (tests/test_assets.c): hafl_asset_verify on the real assets and on damaged
# copies, and `hafl assets` (listing, --verify, --require). It needs base3M.bin, tok4096.bin and
# tok4096.model, which have no public address, and fails naming the places looked in when they
# are missing. Quick and pure C, so it also runs in the ASan+UBSan tree.
set_tests_properties(assets PROPERTIES TIMEOUT 120 LABELS asan)
