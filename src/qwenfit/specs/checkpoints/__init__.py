"""Any Qwen3.5-architecture checkpoint turned into a spec row: local folders, GGUF files, Hub repos.

`summary` is the record both formats reduce to; `config`, `safetensors` and `gguf` read one
format each; `hub` fetches headers from the Hub (only when asked) and caches summaries; `rows`
builds the spec row; `resolve` sits above them all and decides which reader a reference needs.
"""
