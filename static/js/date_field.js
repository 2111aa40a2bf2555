/*
 * A date field in the user's language, whatever the browser's: the page's <html lang> (the
 * language the user chose, or their browser's when they never chose) names the months and
 * weekdays through Intl.DateTimeFormat, so a zh-Hant user reads "2026年12月3日" and "星期四" in
 * an English browser, and an English user reads "Dec 3, 2026" in a Chinese one. A native
 * <input type="date"> is drawn in the browser's language instead, hence this field.
 *
 * Progressive enhancement of <input type="text" data-date-field name="from" value="2026-12-03">
 * (templates/includes/date_field.html). Without JavaScript that plain field takes YYYY-MM-DD and
 * the server answers a bad date with a 400 saying so. With it:
 *   - the field shows the date in the user's language and accepts it typed that way, or as
 *     YYYY-MM-DD; an unreadable date is reported under the field and the form is not sent;
 *   - a hidden input carries the field's name and the ISO date (YYYY-MM-DD), so the server
 *     receives exactly what it received before;
 *   - a button opens a calendar (a dialog holding a grid, as in the WAI-ARIA date picker
 *     pattern): arrows move by day and week, Page Up/Down by month (with Shift by year),
 *     Home/End to the week's ends, Enter or Space picks, Escape closes; focus returns to the button.
 * Its visible words come from the field's data-text-* attributes (translated by the template).
 */
(function () {
  "use strict";

  var ISO = /^\s*(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})\s*$/;
  var CJK = /^\s*(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日?\s*$/;
  var counter = 0;

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function isoOf(date) {
    return date.getUTCFullYear() + "-" + pad(date.getUTCMonth() + 1) + "-" + pad(date.getUTCDate());
  }

  function utc(year, month, day) {
    // null unless year-month-day is a real day (no 30 February rolling over into March)
    var date = new Date(Date.UTC(year, month - 1, day));
    if (year < 1 || date.getUTCFullYear() !== year || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return null;
    return date;
  }

  function addDays(date, days) { return new Date(date.getTime() + days * 86400000); }

  function addMonths(date, months) {
    var target = new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + months, 1));
    var last = new Date(Date.UTC(target.getUTCFullYear(), target.getUTCMonth() + 1, 0)).getUTCDate();
    target.setUTCDate(Math.min(date.getUTCDate(), last));
    return target;
  }

  function Words(lang) {
    var opts = function (extra) { return Object.assign({ timeZone: "UTC" }, extra); };
    this.lang = lang;
    this.field = new Intl.DateTimeFormat(lang, opts({ year: "numeric", month: "short", day: "numeric" }));
    this.full = new Intl.DateTimeFormat(lang, opts({ dateStyle: "full" }));
    this.monthYear = new Intl.DateTimeFormat(lang, opts({ year: "numeric", month: "long" }));
    var shortDay = new Intl.DateTimeFormat(lang, opts({ weekday: "short" }));
    var longDay = new Intl.DateTimeFormat(lang, opts({ weekday: "long" }));
    var longMonth = new Intl.DateTimeFormat(lang, opts({ month: "long" }));
    var shortMonth = new Intl.DateTimeFormat(lang, opts({ month: "short" }));
    this.firstDay = firstDayOfWeek(lang); // 0 = Sunday
    this.weekdays = [];
    for (var i = 0; i < 7; i += 1) {
      var day = new Date(Date.UTC(2026, 1, 1 + ((this.firstDay + i) % 7))); // 1 February 2026 was a Sunday
      this.weekdays.push({ short: shortDay.format(day), long: longDay.format(day) });
    }
    this.months = []; // lower-case long and short names, to read a typed month name back
    for (var m = 0; m < 12; m += 1) {
      var first = new Date(Date.UTC(2026, m, 1));
      this.months.push([longMonth.format(first).toLowerCase(), shortMonth.format(first).toLowerCase().replace(/\.$/, "")]);
    }
  }

  function firstDayOfWeek(lang) {
    try {
      var locale = new Intl.Locale(lang).maximize();
      var info = locale.getWeekInfo ? locale.getWeekInfo() : locale.weekInfo;
      if (info && info.firstDay) return info.firstDay % 7;
    } catch (error) { /* an old browser: Sunday, as in both languages' usual calendars */ }
    return 0;
  }

  Words.prototype.monthOf = function (word) {
    var text = word.toLowerCase().replace(/\.$/, "");
    if (text.length < 3 && !/月/.test(text)) return 0;
    for (var m = 0; m < 12; m += 1) {
      if (this.months[m][0] === text || this.months[m][1] === text || this.months[m][0].indexOf(text) === 0) return m + 1;
    }
    return 0;
  };

  /* What the user typed, as a Date (UTC midnight); null if it is no date; undefined if empty. */
  Words.prototype.parse = function (text) {
    if (!text || !text.trim()) return undefined;
    var match = ISO.exec(text) || CJK.exec(text);
    if (match) return utc(Number(match[1]), Number(match[2]), Number(match[3]));
    // A month named in words with a day and a year, in any order: "Dec 3, 2026", "3 December 2026".
    var numbers = text.match(/\d+/g) || [];
    var names = text.replace(/\d+/g, " ").split(/[\s,./-]+/).filter(Boolean);
    var months = names.map(this.monthOf, this).filter(Boolean);
    if (numbers.length !== 2 || months.length !== 1) return null;
    var year = numbers.filter(function (n) { return n.length === 4; });
    var day = numbers.filter(function (n) { return n.length <= 2; });
    if (year.length !== 1 || day.length !== 1) return null;
    return utc(Number(year[0]), months[0], Number(day[0]));
  };

  function enhance(input, words) {
    var id = input.id || "date-field-" + (counter += 1);
    var text = input.dataset;
    var label = input.labels && input.labels[0] ? input.labels[0].textContent.trim() : "";
    var hidden = document.createElement("input");
    hidden.type = "hidden";
    hidden.name = input.name;
    input.removeAttribute("name");
    input.removeAttribute("pattern");
    input.after(hidden);
    input.inputMode = "text";
    input.placeholder = words.field.format(new Date(Date.UTC(2026, 11, 3)));
    input.dataset.enhanced = "1";

    var wrapper = document.createElement("span");
    wrapper.className = "date-field";
    input.before(wrapper);
    wrapper.append(input, hidden);

    var error = document.createElement("span");
    error.className = "date-error error";
    error.id = id + "-error";
    error.hidden = true;
    var button = document.createElement("button");
    button.type = "button";
    button.className = "date-button";
    button.setAttribute("aria-haspopup", "dialog");
    button.setAttribute("aria-expanded", "false");
    button.setAttribute("aria-label", (text.textChoose || "Choose a date") + (label ? ": " + label : ""));
    button.innerHTML = '<svg aria-hidden="true" width="16" height="16" viewBox="0 0 16 16" fill="none" stroke="currentColor" stroke-width="1.5">' +
      '<rect x="1.5" y="2.5" width="13" height="12" rx="1.5"/><path d="M1.5 6.5h13M5 1v3M11 1v3"/></svg>';
    wrapper.append(button, error);
    var described = (input.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
    input.setAttribute("aria-describedby", described.concat(error.id).join(" "));

    var selected = null;
    function show(date) {
      selected = date || null;
      hidden.value = date ? isoOf(date) : "";
      input.dataset.iso = hidden.value;
      input.value = date ? words.field.format(date) : "";
    }
    function complain(on) {
      error.hidden = !on;
      error.textContent = on ? (text.textInvalid || "Enter a date such as {example}, or as YYYY-MM-DD.")
        .replace("{example}", input.placeholder) : "";
      if (on) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    }
    /* Reads the field; false (and says so) when it holds no date. */
    function read() {
      var date = words.parse(input.value);
      if (date === null) {
        hidden.value = input.value; // sent as typed if it ever is: the server answers it with a 400
        complain(true);
        return false;
      }
      complain(false);
      show(date);
      return true;
    }
    var initial = words.parse(input.value);
    if (initial === null) {
      hidden.value = input.value; // the server echoed an invalid date back: keep it, and say why
      complain(true);
    } else {
      show(initial);
    }
    // The message goes as soon as the date is edited, not when the field is left: leaving it for
    // the submit button must not move that button away under the pointer.
    input.addEventListener("input", function () { if (!error.hidden) complain(false); });
    input.addEventListener("change", function () {
      read();
      input.dispatchEvent(new CustomEvent("date-field-change", { bubbles: true }));
    });

    if (input.form) {
      input.form.addEventListener("submit", function (event) {
        hidden.disabled = input.disabled; // a field switched off is not sent, so neither is its date
        if (input.disabled || read()) return;
        event.preventDefault();
        input.focus();
      });
    }
    // Kept in step when other code switches the field off (the usage page does for presets).
    new MutationObserver(function () {
      hidden.disabled = input.disabled;
      button.disabled = input.disabled;
    }).observe(input, { attributes: true, attributeFilter: ["disabled"] });
    hidden.disabled = input.disabled;
    button.disabled = input.disabled;

    var calendar = null;
    button.addEventListener("click", function () {
      if (calendar) return calendar.close(true);
      var parsed = words.parse(input.value);
      calendar = openCalendar(wrapper, words, text, parsed || selected, function (date) {
        if (date) {
          show(date);
          complain(false);
          input.dispatchEvent(new CustomEvent("date-field-change", { bubbles: true }));
        }
        calendar = null;
        button.setAttribute("aria-expanded", "false");
        button.focus();
      });
      button.setAttribute("aria-expanded", "true");
    });
  }

  function openCalendar(wrapper, words, text, initial, done) {
    var today = new Date();
    var chosen = initial || null;
    var focus = initial || utc(today.getFullYear(), today.getMonth() + 1, today.getDate());
    counter += 1;
    var headingId = "date-calendar-heading-" + counter;
    var helpId = "date-calendar-help-" + counter;

    var dialog = document.createElement("div");
    dialog.className = "date-calendar";
    dialog.setAttribute("role", "dialog");
    dialog.setAttribute("aria-modal", "true");
    dialog.setAttribute("aria-labelledby", headingId);
    dialog.setAttribute("aria-describedby", helpId);
    dialog.lang = words.lang;

    var head = document.createElement("div");
    head.className = "date-calendar-head";
    var previous = navButton("\u2039", text.textPrevious || "Previous month");
    var heading = document.createElement("h2");
    heading.id = headingId;
    heading.className = "date-calendar-title";
    heading.setAttribute("aria-live", "polite");
    var next = navButton("\u203A", text.textNext || "Next month");
    head.append(previous, heading, next);

    var grid = document.createElement("div");
    grid.className = "date-grid";
    grid.setAttribute("role", "grid");
    grid.setAttribute("aria-labelledby", headingId);

    var help = document.createElement("p");
    help.id = helpId;
    help.className = "date-calendar-help muted";
    help.textContent = text.textKeys || "";
    var close = document.createElement("button");
    close.type = "button";
    close.className = "link date-calendar-close";
    close.textContent = text.textClose || "Close";
    var foot = document.createElement("div");
    foot.className = "date-calendar-foot";
    foot.append(help, close);
    dialog.append(head, grid, foot);
    wrapper.append(dialog);

    function navButton(symbol, name) {
      var b = document.createElement("button");
      b.type = "button";
      b.className = "date-nav";
      b.textContent = symbol;
      b.setAttribute("aria-label", name);
      return b;
    }

    function render(moveFocus) {
      heading.textContent = words.monthYear.format(focus);
      var rows = [];
      var header = document.createElement("div");
      header.setAttribute("role", "row");
      header.className = "date-row";
      words.weekdays.forEach(function (day) {
        var cell = document.createElement("span");
        cell.setAttribute("role", "columnheader");
        cell.className = "date-weekday";
        cell.setAttribute("aria-label", day.long);
        cell.textContent = day.short;
        header.append(cell);
      });
      rows.push(header);
      var first = utc(focus.getUTCFullYear(), focus.getUTCMonth() + 1, 1);
      var lead = (first.getUTCDay() - words.firstDay + 7) % 7;
      var day = addDays(first, -lead);
      var row;
      for (var i = 0; day.getUTCMonth() === focus.getUTCMonth() || i % 7 !== 0 || i === 0; i += 1) {
        if (i % 7 === 0) {
          row = document.createElement("div");
          row.setAttribute("role", "row");
          row.className = "date-row";
          rows.push(row);
        }
        var cell = document.createElement("span");
        cell.setAttribute("role", "gridcell");
        cell.className = "date-day";
        if (day.getUTCMonth() === focus.getUTCMonth()) {
          var iso = isoOf(day);
          cell.dataset.date = iso;
          cell.textContent = String(day.getUTCDate());
          cell.setAttribute("aria-label", words.full.format(day));
          cell.setAttribute("aria-selected", chosen && isoOf(chosen) === iso ? "true" : "false");
          cell.tabIndex = iso === isoOf(focus) ? 0 : -1;
          if (iso === isoOf(utc(today.getFullYear(), today.getMonth() + 1, today.getDate()))) {
            cell.setAttribute("aria-current", "date");
          }
        }
        row.append(cell);
        day = addDays(day, 1);
      }
      grid.replaceChildren.apply(grid, rows);
      if (moveFocus) grid.querySelector('[tabindex="0"]').focus();
    }

    function move(date) {
      focus = date;
      render(true);
    }

    function finish(date) {
      document.removeEventListener("mousedown", outside, true);
      dialog.remove();
      done(date);
    }

    function outside(event) {
      if (!dialog.contains(event.target) && !wrapper.querySelector(".date-button").contains(event.target)) finish(null);
    }

    grid.addEventListener("click", function (event) {
      var cell = event.target.closest("[data-date]");
      if (cell) finish(words.parse(cell.dataset.date));
    });
    grid.addEventListener("keydown", function (event) {
      var steps = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -7, ArrowDown: 7 };
      if (event.key in steps) move(addDays(focus, steps[event.key]));
      else if (event.key === "PageUp") move(addMonths(focus, event.shiftKey ? -12 : -1));
      else if (event.key === "PageDown") move(addMonths(focus, event.shiftKey ? 12 : 1));
      else if (event.key === "Home") move(addDays(focus, -((focus.getUTCDay() - words.firstDay + 7) % 7)));
      else if (event.key === "End") move(addDays(focus, 6 - ((focus.getUTCDay() - words.firstDay + 7) % 7)));
      else if (event.key === "Enter" || event.key === " ") finish(focus);
      else return;
      event.preventDefault();
    });
    dialog.addEventListener("keydown", function (event) {
      if (event.key === "Escape") {
        event.preventDefault();
        finish(null);
      } else if (event.key === "Tab") {
        // Focus stays in the dialog while it is open (aria-modal).
        var stops = [previous, next, grid.querySelector('[tabindex="0"]'), close];
        var at = stops.indexOf(document.activeElement);
        event.preventDefault();
        stops[(at + (event.shiftKey ? stops.length - 1 : 1)) % stops.length].focus();
      }
    });
    previous.addEventListener("click", function () { focus = addMonths(focus, -1); render(false); });
    next.addEventListener("click", function () { focus = addMonths(focus, 1); render(false); });
    close.addEventListener("click", function () { finish(null); });
    document.addEventListener("mousedown", outside, true);
    render(true);
    var box = dialog.getBoundingClientRect(); // on a phone the "To" field's calendar would leave the screen
    var room = document.documentElement.clientWidth - 8;
    if (box.right > room) dialog.style.left = Math.round(room - box.right) + "px";
    return { close: function () { finish(null); } };
  }

  var lang = document.documentElement.lang || undefined;
  var words = null;
  document.querySelectorAll("input[data-date-field]").forEach(function (input) {
    words = words || new Words(lang);
    enhance(input, words);
  });
  window.dateFieldWords = function () { return words; }; // for the browser tests: the field's language
})();
