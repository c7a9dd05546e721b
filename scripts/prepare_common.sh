# Shared by prepare-*.sh (sourced with the script's arguments): the venv, option parsing, BPE and
# fairseq-preprocess.
# Options every prepare script takes:
#   --bpe none|subword-nmt|sentencepiece   joint subword model (default: none, word level)
#   --bpe-size N                           merges / vocabulary size (default 10000)
#   --threshold K                          word-level vocabulary: words seen >= K times (default 3)
#   --out DIR                              fairseq-preprocess destination
#   --src PATH                             local data (folder or archive) instead of the default
bpe=none; bpe_size=10000; threshold=3; out=""; src_path=""
parse_prepare_args() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --bpe) bpe="$2"; shift 2 ;;
            --bpe-size) bpe_size="$2"; shift 2 ;;
            --threshold) threshold="$2"; shift 2 ;;
            --out) out="$2"; shift 2 ;;
            --src) src_path="$2"; shift 2 ;;
            *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
        esac
    done
    case "$bpe" in none|subword-nmt|sentencepiece) ;; *)
        echo "--bpe $bpe: choose none, subword-nmt or sentencepiece" >&2; exit 2 ;; esac
}

# binarize TEXT_DIR SRC TGT: BPE (if any) then fairseq-preprocess into $out
binarize() {
    local text="$1" s="$2" t="$3"
    python scripts/bpe.py "$text" "$s" "$t" --bpe "$bpe" --size "$bpe_size"
    local thr="$threshold"; [ "$bpe" = none ] || thr=0
    local prefs=(--trainpref "$text/train" --validpref "$text/valid")
    [ -f "$text/test.$s" ] && prefs+=(--testpref "$text/test")
    rm -rf "$out"
    fairseq-preprocess --source-lang "$s" --target-lang "$t" "${prefs[@]}" --destdir "$out" \
        --thresholdsrc "$thr" --thresholdtgt "$thr" --workers 2 >"$text/preprocess.log" 2>&1 \
        || { tail -20 "$text/preprocess.log"; exit 1; }
    echo "prepared $out: $(grep -o '\[[a-z]*\] Dictionary: [0-9]* types' "$text/preprocess.log" | sort -u | tr '\n' ' ')"
}

. scripts/env.sh
parse_prepare_args "$@"
