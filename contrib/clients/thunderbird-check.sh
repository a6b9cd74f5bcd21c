#!/usr/bin/env bash
# Sets a bridge account up in a fresh Thunderbird profile under Xvfb, the
# way thunderbird.md tells a person to, and takes a screenshot of each
# step, so the guide can be checked against the Thunderbird at hand.
#
#   contrib/clients/thunderbird-check.sh SETTINGS [OUTDIR]
#
# SETTINGS is an account's settings as asmtpd printed them ("address:",
# "carddav:", "password:" lines; contrib/local-network.sh writes
# DIR/a/settings.txt); the script also adds a contact "Zoe" to that
# account. The profile's only preference of note is
# mailnews.auto_config_url, pointed at the bridge's autoconfig. Screenshots
# (PNG) and the profile go to OUTDIR (default: a new temporary directory).
# Needs thunderbird, xvfb, xdotool and imagemagick (Debian packages).
# The UI is driven blind with xdotool: look at the screenshots.
set -euo pipefail
settings=${1:?usage: thunderbird-check.sh SETTINGS [OUTDIR]}
out=${2:-$(mktemp -d -t asmtp-thunderbird.XXXXXX)}
mkdir -p "$out"
for tool in thunderbird Xvfb xdotool import; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install thunderbird xvfb xdotool imagemagick" >&2; exit 2; }
done
field() { sed -n "s/^ *$1: //p" "$settings"; }
address=$(field address) password=$(field password) carddav=$(field carddav)
[ -n "$address" ] && [ -n "$password" ] && [ -n "$carddav" ] || { echo "$settings lacks address, password or carddav" >&2; exit 2; }
curl -fsS "${carddav}autoconfig/${address#*@}" >"$out/config-v1.1.xml" ||
  { echo "the bridge serves no autoconfig at ${carddav}autoconfig/${address#*@}: is asmtpd running?" >&2; exit 1; }

profile="$out/profile"
mkdir -p "$profile"
cat >"$profile/user.js" <<JS
// The one preference thunderbird.md asks for: autoconfig from the bridge.
user_pref("mailnews.auto_config_url", "${carddav}autoconfig/");
// Only to keep a scripted run quiet: no start page, updates or telemetry.
user_pref("mailnews.start_page.enabled", false);
user_pref("app.update.enabled", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);
user_pref("mail.rights.override", true);
user_pref("mail.shell.checkDefaultClient", false);
JS

display=:$((90 + RANDOM % 100))
Xvfb "$display" -screen 0 1280x900x24 -nolisten tcp >"$out/xvfb.log" 2>&1 &
xvfb=$!
tb=""
trap 'kill $tb $xvfb 2>/dev/null; wait 2>/dev/null; echo "screenshots and profile in $out" >&2' EXIT
export DISPLAY=$display
for _ in $(seq 50); do xdotool getdisplaygeometry >/dev/null 2>&1 && break; sleep 0.1; done

thunderbird --profile "$profile" --no-remote >"$out/thunderbird.log" 2>&1 &
tb=$!
n=0
shot() { # shot NAME: a screenshot of the whole screen
  n=$((n + 1))
  import -window root "$out/$(printf %02d "$n")-$1.png"
  echo "$out/$(printf %02d "$n")-$1.png" >&2
}
# waitfor SECONDS: give Thunderbird time to draw (it has no "ready" signal
# to wait on from outside).
waitfor() { sleep "$1"; }
type() { xdotool type --delay 30 -- "$1"; }
key() { xdotool key --delay 100 "$@"; }

waitfor 20; shot account-hub
# Account Hub, first page: full name (prefilled with the login name:
# replace it), then the email address.
key ctrl+a; type "Alice"; key Tab; type "$address"; waitfor 1; shot name-and-address
# Continue: Thunderbird fetches mailnews.auto_config_url + "asmtp" and
# shows the bridge's servers and ports ("Account settings found
# automatically").
key Return; waitfor 8; shot autoconfig-found
key Return; waitfor 3; shot password
type "$password"; waitfor 1; key Return; waitfor 10; shot account-added
xdotool mousemove 874 648 click 1; waitfor 5; shot mail # Finish

# The address book: Address Book tab, "New Address Book" button, "Add
# remote Address Book" (positions for the 1280x900 screen above), with
# the full address as username and the carddav: URL.
xdotool mousemove 22 67 click 1; waitfor 3
xdotool mousemove 69 106 click 1; waitfor 3; shot add-address-book
xdotool mousemove 575 474 click 1; waitfor 3
type "$address"; key Tab; type "$carddav"; waitfor 1; shot carddav-url
key Return; waitfor 5
xdotool mousemove 575 473 click 1; type "$password"; key Return; waitfor 5; shot carddav-books-found
xdotool mousemove 874 648 click 1; waitfor 5; shot address-book-added # Continue
xdotool mousemove 874 648 click 1; waitfor 10; shot address-book # Finish

# A contact made in Thunderbird: New Contact, first name and an @asmtp
# address (a made-up passport id: the contact stays pending), Save. The
# bridge adds it (asmtpd-cli contact list shows "Zoe ... pending").
xdotool mousemove 152 215 click 1; waitfor 1 # the ASMTP contacts book
xdotool mousemove 165 106 click 1; waitfor 3
type "Zoe"; xdotool mousemove 917 470 click 1; type "0123456789abcdef0123456789abcdef@${address#*@}"
xdotool mousemove 1080 833 click 1; waitfor 5; shot new-contact # Save
