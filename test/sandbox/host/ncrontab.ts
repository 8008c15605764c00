/**
 * A small NCRONTAB evaluator for timer triggers: `{second} {minute} {hour} {day} {month} {day-of-week}`, evaluated in
 * UTC (the Functions host's default when WEBSITE_TIME_ZONE is unset).
 *
 * Semantics follow NCrontab, the library the Functions host uses: a date must satisfy BOTH the day-of-month and the
 * day-of-week fields (unlike Vixie cron, which accepts either when both are restricted), day-of-week is 0-6 with
 * Sunday = 0, and `a/n` means "from a to the field's maximum, every n".
 */

/** A parsed schedule. */
export interface NcrontabSchedule {
  /** The expression as given. */
  readonly expression: string;
  /** The first occurrence strictly after `after` (whole seconds, UTC). */
  next(after: Date): Date;
}

interface FieldSpec {
  label: string;
  min: number;
  max: number;
  names?: readonly string[];
}

const FIELDS: readonly FieldSpec[] = [
  { label: 'second', min: 0, max: 59 },
  { label: 'minute', min: 0, max: 59 },
  { label: 'hour', min: 0, max: 23 },
  { label: 'day', min: 1, max: 31 },
  {
    label: 'month',
    min: 1,
    max: 12,
    names: ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'],
  },
  { label: 'day-of-week', min: 0, max: 6, names: ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'] },
];

/** Longest month length for each month (1-based index), leap years included. */
const MAX_DAYS_IN_MONTH = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * How far ahead `next` searches. The rarest satisfiable schedule (29 February on a given weekday) recurs within 40
 * years, so anything not found by then never occurs.
 */
const SEARCH_YEARS = 50;

/** Parses a six-field NCRONTAB expression; throws an Error naming the offending field when it is invalid. */
export function parseNcrontab(expression: string): NcrontabSchedule {
  const parts = expression.trim().split(/\s+/);
  if (parts.length !== FIELDS.length) {
    throw new Error(
      `Invalid NCRONTAB expression "${expression}": expected 6 fields ` +
        `({second} {minute} {hour} {day} {month} {day-of-week}), got ${parts.length}`,
    );
  }
  const sets = parts.map((part, i) => parseField(expression, part, FIELDS[i]));
  const [seconds, minutes, hours, days, months, daysOfWeek] = sets;

  // Catch schedules such as "0 0 0 30 2 *" up front instead of failing on the first `next` call.
  let someDayExists = false;
  for (let m = 1; m <= 12 && !someDayExists; m++) {
    if (!months[m]) continue;
    for (let d = 1; d <= MAX_DAYS_IN_MONTH[m]; d++) {
      if (days[d]) {
        someDayExists = true;
        break;
      }
    }
  }
  if (!someDayExists) {
    throw new Error(`Invalid NCRONTAB expression "${expression}": the day and month fields never coincide`);
  }

  return {
    expression,
    next(after: Date): Date {
      const start = after.getTime();
      if (Number.isNaN(start)) throw new Error('NCRONTAB next(): invalid start date');
      let t = new Date(Math.floor(start / 1000) * 1000 + 1000);
      const lastYear = t.getUTCFullYear() + SEARCH_YEARS;
      while (t.getUTCFullYear() <= lastYear) {
        const y = t.getUTCFullYear();
        const mo = t.getUTCMonth();
        const d = t.getUTCDate();
        const h = t.getUTCHours();
        const mi = t.getUTCMinutes();
        const s = t.getUTCSeconds();
        // Each miss jumps to the start of the next unit of that field, so the loop runs at most a few thousand times.
        if (!months[mo + 1]) {
          t = new Date(Date.UTC(y, mo + 1, 1));
        } else if (!days[d] || !daysOfWeek[t.getUTCDay()]) {
          t = new Date(Date.UTC(y, mo, d + 1));
        } else if (!hours[h]) {
          t = new Date(Date.UTC(y, mo, d, h + 1));
        } else if (!minutes[mi]) {
          t = new Date(Date.UTC(y, mo, d, h, mi + 1));
        } else if (!seconds[s]) {
          t = new Date(Date.UTC(y, mo, d, h, mi, s + 1));
        } else {
          return t;
        }
      }
      throw new Error(`NCRONTAB expression "${expression}" has no occurrence within ${SEARCH_YEARS} years`);
    },
  };
}

/** Returns a membership table indexed by value (index 0..max). */
function parseField(expression: string, text: string, spec: FieldSpec): boolean[] {
  const allowed = new Array<boolean>(spec.max + 1).fill(false);
  const fail = (why: string): never => {
    throw new Error(`Invalid NCRONTAB expression "${expression}": ${spec.label} field "${text}" ${why}`);
  };
  for (const item of text.split(',')) {
    if (item === '') fail('has an empty list item');
    const [rangeText, stepText, extra] = item.split('/');
    if (extra !== undefined) fail('has more than one "/"');
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText) || Number(stepText) < 1) fail(`has an invalid step "${stepText}"`);
      step = Number(stepText);
    }
    let first: number;
    let last: number;
    if (rangeText === '*') {
      first = spec.min;
      last = spec.max;
    } else if (rangeText.includes('-')) {
      const [a, b, more] = rangeText.split('-');
      if (more !== undefined) fail('has an invalid range');
      first = parseValue(a, spec, fail);
      last = parseValue(b, spec, fail);
      if (first > last) fail(`has a descending range ${first}-${last}`);
    } else {
      first = parseValue(rangeText, spec, fail);
      last = stepText === undefined ? first : spec.max;
    }
    for (let v = first; v <= last; v += step) allowed[v] = true;
  }
  return allowed;
}

function parseValue(text: string, spec: FieldSpec, fail: (why: string) => never): number {
  let value: number;
  if (/^\d+$/.test(text)) {
    value = Number(text);
  } else {
    const index = spec.names?.indexOf(text.toUpperCase()) ?? -1;
    if (index < 0) return fail(`has an invalid value "${text}"`);
    value = spec.min + index;
  }
  if (value < spec.min || value > spec.max) fail(`value ${value} is outside ${spec.min}-${spec.max}`);
  return value;
}
