#include "common/chat_template/strftime.h"

#include <locale.h>
#include <time.h>

#include <cstdio>
#include <vector>

#include "common/chat_template/error.h"

namespace qeff::chat {
namespace {

bool ParseFrozen(const std::string& s, struct tm* out) {
  int y, mo, d, h, mi, sec;
  char tail;
  if (s.size() != 19 || std::sscanf(s.c_str(), "%4d-%2d-%2d %2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &sec, &tail) != 6) {
    return false;
  }
  if (s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':') return false;
  if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59 || h < 0 || mi < 0 || sec < 0) {
    return false;
  }
  struct tm t = {};
  t.tm_year = y - 1900;
  t.tm_mon = mo - 1;
  t.tm_mday = d;
  t.tm_hour = h;
  t.tm_min = mi;
  t.tm_sec = sec;
  // timegm + gmtime_r fill in the weekday and day of the year (and reject Feb 30).
  const time_t when = timegm(&t);
  struct tm norm = {};
  if (gmtime_r(&when, &norm) == nullptr || norm.tm_mday != d || norm.tm_mon != mo - 1) return false;
  norm.tm_isdst = -1;
  *out = norm;
  return true;
}

locale_t CLocale() {
  static locale_t loc = newlocale(LC_ALL_MASK, "C", static_cast<locale_t>(0));
  return loc;
}

}  // namespace

bool IsValidFrozenTime(const std::string& frozen) {
  struct tm t;
  return ParseFrozen(frozen, &t);
}

std::string StrftimeNow(const std::string& format, const std::string& frozen) {
  struct tm t = {};
  long micros = 0;
  if (frozen.empty()) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &t);
    micros = ts.tv_nsec / 1000;
  } else if (!ParseFrozen(frozen, &t)) {
    throw TemplateError(ErrorKind::kRuntime, "invalid frozen time '" + frozen + "' (want YYYY-MM-DD HH:MM:SS)");
  }
  // datetime.strftime substitutes %f, %z and %Z itself before calling the C library.
  std::string fmt;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%' || i + 1 >= format.size()) {
      fmt.push_back(format[i]);
      continue;
    }
    const char c = format[++i];
    if (c == 'f') {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%06ld", micros);
      fmt += buf;
    } else if (c == 'z' || c == 'Z') {
      // a naive datetime has no offset or zone name
    } else {
      fmt.push_back('%');
      fmt.push_back(c);
    }
  }
  if (fmt.empty()) return "";
  for (size_t cap = 256 + 8 * fmt.size(); cap <= (1u << 20); cap *= 4) {
    std::vector<char> buf(cap);
    const size_t n = locale_t(CLocale()) != static_cast<locale_t>(0) ? strftime_l(buf.data(), cap, fmt.c_str(), &t, CLocale())
                                                                     : strftime(buf.data(), cap, fmt.c_str(), &t);
    if (n > 0) return std::string(buf.data(), n);
  }
  return "";  // formats that produce nothing (e.g. "%p" in some locales)
}

}  // namespace qeff::chat
