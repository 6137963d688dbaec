/*  The subcommands of `hafl`, one line each: HAFL_CMD(name, function, one-line summary).
    Included twice by design (declarations in hafl_cmd.h, the table in hafl.c); no guard. */
HAFL_CMD ("check", hafl_cmd_check, "validate a topology file and print its resolved settings")
HAFL_CMD ("assets", hafl_cmd_assets, "list the known models and datasets, where they are found, and verify them")
HAFL_CMD ("bench", hafl_cmd_bench, "run a benchmark against its reference in the same run")
HAFL_CMD ("eval", hafl_cmd_eval, "score a saved adapter on the held-out set of a topology's task")
HAFL_CMD ("generate", hafl_cmd_generate, "sample text from a checkpoint like the llama2.c runner")
HAFL_CMD ("tail", hafl_cmd_tail, "follow a running federation's events from the logger's PUB endpoint")
HAFL_CMD ("ctl", hafl_cmd_ctl, "send a control command (status, swap-aggregator, fault, stop) to a server")
HAFL_CMD ("run", hafl_cmd_run, "run a federation from a topology file (in-process or --processes)")
HAFL_CMD ("node", hafl_cmd_node, "run the actors a topology places on one host")
HAFL_CMD ("keygen", hafl_cmd_keygen, "create CURVE certificates (server, clients, allow-list) for a secured topology")
HAFL_CMD ("info", hafl_cmd_info, "describe a GGUF model file: architecture, shapes, types, tokenizer, LoRA targets")
HAFL_CMD ("export", hafl_cmd_export, "write a finished run's adapter as a llama.cpp LoRA GGUF and/or a Hugging Face PEFT folder")
