#!/usr/bin/env bash
# The participant pages' catalogues (docs/study-app.md, "Languages").
#   scripts/translations.sh extract        collect every marked string into study_app/translations/messages.pot
#   scripts/translations.sh init LANG      start a new language's messages.po from the template
#   scripts/translations.sh update         merge new strings into every language's messages.po
#   scripts/translations.sh compile        messages.po -> messages.mo (committed; see the docs for why)
set -euo pipefail
cd "$(dirname "$0")/.."
PYBABEL=${PYBABEL:-.venv/bin/pybabel}
DIR=study_app/translations
case "${1:-}" in
  extract) "$PYBABEL" extract -F study_app/babel.cfg -k N_ -k plural:2,3 -k pgettext:1c,2 --no-location \
             --sort-output --project advlegit -o "$DIR/messages.pot" . ;;
  init) "$PYBABEL" init -i "$DIR/messages.pot" -d "$DIR" -l "${2:?language code, e.g. fr}" ;;
  update) "$PYBABEL" update -i "$DIR/messages.pot" -d "$DIR" --no-fuzzy-matching --ignore-obsolete ;;
  compile) "$PYBABEL" compile -d "$DIR" --statistics ;;
  *) echo "usage: $0 extract | init LANG | update | compile" >&2; exit 2 ;;
esac
