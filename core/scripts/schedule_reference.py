#!/usr/bin/env python3
"""Reference figures for the amortized schedules in core/src/schedule.rs tests.

An implementation of the README's rule that shares nothing with the Rust code: Python's
`decimal` module at 60 significant digits, ROUND_HALF_UP (half away from zero).
  i = rate/100/12 (monthly) or /4 (quarterly)
  level payment A = round(P*i / (1 - (1+i)^-n)), or round(P/n) when i = 0
  interest = round(balance*i), computed as round(balance*rate/1200) (or /400) so that an
    exact half cent stays exact; principal = A - interest; the last payment takes the rest.
Run: python3 core/scripts/schedule_reference.py
Prints one Rust tuple per case:
  (principal, rate, termMonths, periods per year, A, first interest, last total,
   interest sum, (installment, its interest) of the case's first exact half-cent interest or (0, ""))
"""
from decimal import Decimal as D, getcontext, ROUND_HALF_UP

getcontext().prec = 60
CENT = D("0.01")

CASES = [
    ("100000", "7.5", 12, 12),
    ("250000", "6.25", 360, 12),
    ("1234.56", "19.99", 24, 12),
    ("5000000", "4.125", 300, 12),
    ("999999.99", "0.5", 600, 12),
    ("10000", "0", 7, 12),
    ("1", "5", 12, 12),
    ("75000", "12", 60, 4),
    ("300000", "8.875", 120, 4),
    ("150000", "29.999999", 36, 4),
]


def rnd(x):
    return x.quantize(CENT, rounding=ROUND_HALF_UP)


def schedule(p, rate, months, per_year):
    p, rate = D(p), D(rate)
    n = months * per_year // 12
    i = rate / 100 / per_year
    a = rnd(p / n) if i == 0 else rnd(p * i / (1 - (1 + i) ** -n))
    balance, rows, half = p, [], (0, "")
    for k in range(1, n + 1):
        exact = balance * rate / (100 * per_year)
        interest = rnd(exact)
        if half == (0, "") and (exact * 1000) % 10 == 5:
            half = (k, str(interest))
        principal = balance if k == n else min(max(a - interest, D(0)), balance)
        balance -= principal
        rows.append((principal, interest))
    return a, rows, half


for p, rate, months, per_year in CASES:
    a, rows, half = schedule(p, rate, months, per_year)
    interest_sum = sum(r[1] for r in rows)
    last = rows[-1][0] + rows[-1][1]
    print(f'("{p}", "{rate}", {months}, {per_year}, "{a}", "{rows[0][1]}", "{last}", '
          f'"{interest_sum}", ({half[0]}, "{half[1]}")),')
