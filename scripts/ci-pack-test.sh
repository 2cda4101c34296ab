#!/usr/bin/env bash
# CI step: the package as a user gets it. Packs this checkout (which must be built, with its prebuild: dist/ and
# prebuilds/ ship in the tarball; .ci/run runs `npm run build:prebuilds` first) and, in a fresh project outside the
# checkout:
#   1. installs the tarball with no compiler, cmake or make on the PATH: the prebuild for this libtorch must be
#      taken (no build/ folder appears) and the install must finish within IBQ_PACK_INSTALL_LIMIT seconds (30);
#      then imports the package and encodes/decodes one image, and checks that require() gets the ESM-only error;
#   2. re-tags the prebuild for another libtorch: it must not be loaded ("not built" error naming both versions
#      and the commands that work there);
#   3. follows that advice (npm install-scripts approve + npm rebuild): a build from source (cmake-js; ccache
#      serves the objects the checkout's build compiled) to a working addon again.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=${IBQ_PACK_INSTALL_LIMIT:-30}
platform=$(node -p 'process.platform + "-" + process.arch')
ls prebuilds/"$platform"/*.node >/dev/null 2>&1 || { echo "ci-pack-test: no prebuild in prebuilds/$platform: run npm run build:prebuilds first" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/ibq-pack-XXXXXX")
trap 'rm -rf "$work"' EXIT
tgz="$work/$(npm pack --silent --pack-destination "$work" | tail -n 1)"
app="$work/app"
mkdir "$app"
cd "$app"
npm init -y >/dev/null
# npm 11 runs a dependency's install script only when the project allows it (package.json allowScripts; older
# npm ignores the field); --foreground-scripts shows what it does
npm pkg set allowScripts.ibq-native=true --json

# a PATH holding every command of this one except compilers and build tools
nocc="$work/bin-without-compilers"
mkdir "$nocc"
IFS=: read -ra dirs <<<"$PATH"
for d in "${dirs[@]}"; do
  for f in "$d"/*; do
    n=$(basename "$f")
    case "$n" in
      cc | c++ | cpp | gcc* | g++* | clang* | *-gcc* | *-g++* | cmake | ccmake | cpack | ctest | make | gmake | ninja | ccache | ld | ld.* | *-ld | as | *-as) continue ;;
    esac
    [[ -x "$f" && ! -e "$nocc/$n" ]] && ln -s "$f" "$nocc/$n"
  done
done
if PATH="$nocc" command -v c++ >/dev/null || PATH="$nocc" command -v cmake >/dev/null; then
  echo "ci-pack-test: could not hide the compilers" >&2
  exit 1
fi
t0=$(date +%s%N)
PATH="$nocc" npm install --no-audit --no-fund --prefer-offline --foreground-scripts "$tgz"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "ci-pack-test: npm install with the prebuild (no compiler on the PATH) took $((ms / 1000)).$(printf %03d $((ms % 1000))) s"
pkg=node_modules/ibq-native
[[ ! -e "$pkg/build" ]] || { echo "ci-pack-test: the install built the addon ($pkg/build exists) instead of using the prebuild" >&2; exit 1; }
(( ms <= limit * 1000 )) || { echo "ci-pack-test: the install took longer than ${limit} s" >&2; exit 1; }

check_encode() {
  node --input-type=module -e "
    import { Tokenizer, tensor, info } from 'ibq-native';
    const tok = Tokenizer.create({
      ddconfig: { double_z: false, z_channels: 32, resolution: 16, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2],
        num_res_blocks: 1, attn_resolutions: [], dropout: 0.0 },
      n_embed: 16, embed_dim: 8 }, { seed: 1 }).eval();
    const idx = tensor(Array.from({ length: 64 }, (_, i) => i % 16), [1, 8, 8], { dtype: 'int64' });
    const [png] = await tok.decodeImages(idx);
    const { indices } = await tok.encodeImages([png], { imageSize: 16 });
    if (indices.shape.join('x') !== '1x8x8') throw new Error('unexpected indices shape ' + indices.shape);
    console.log('ci-pack-test: encoded one image to indices ' + indices.shape.join('x') + ' with libtorch ' + info().libtorch);
  "
}
PATH="$nocc" check_encode
msg=$(node -e "require('ibq-native')" 2>&1 || true)
grep -q ERR_IBQ_ESM_ONLY <<<"$msg" || { echo "ci-pack-test: require() did not give ERR_IBQ_ESM_ONLY: $msg" >&2; exit 1; }

# a prebuild tagged for another libtorch is never loaded; the error names both versions and commands that work here
here=$(node -p "require('./$pkg/prebuilds/$platform/' + require('fs').readdirSync('$pkg/prebuilds/$platform').find(f => f.endsWith('.json'))).version")
for f in "$pkg/prebuilds/$platform"/*.libtorch-*; do
  mv "$f" "$(sed -E 's/libtorch-[0-9_]+/libtorch-0_0_1/' <<<"$f")"
done
sed -i 's/"version": *"[^"]*"/"version": "0.0.1"/' "$pkg/prebuilds/$platform"/*.json
msg=$(node --input-type=module -e "import 'ibq-native'" 2>&1 || true)
for want in ERR_IBQ_ADDON "libtorch 0.0.1" "libtorch $here" "npm rebuild ibq-native" "npm install-scripts approve ibq-native"; do
  grep -qF "$want" <<<"$msg" || { echo "ci-pack-test: the error for a prebuild of another libtorch lacks '$want': $msg" >&2; exit 1; }
done

# its advice: a build from source
npm install-scripts approve ibq-native >/dev/null 2>&1 || true  # npm < 11 has no such command (and no need)
t0=$(date +%s)
npm rebuild ibq-native --foreground-scripts
echo "ci-pack-test: npm rebuild (a build from source) took $(( $(date +%s) - t0 )) s"
[[ -e "$pkg/build/Release/ibq-native.libtorch.json" ]] || { echo "ci-pack-test: npm rebuild did not build from source" >&2; exit 1; }
check_encode
echo "ci-pack-test: ok"
