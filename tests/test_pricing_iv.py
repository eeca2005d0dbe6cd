"""Implied volatility, Black-76 and greeks against QuantLib (an independent implementation)."""
import numpy as np
import pytest

from backtest import pricing

ql = pytest.importorskip("QuantLib")

N_CASES = 1500


def _random_cases(seed: int):
    rng = np.random.default_rng(seed)
    spot = rng.uniform(20.0, 500.0, N_CASES)
    strike = np.round(spot * np.exp(rng.normal(0.0, 0.25, N_CASES)), 2)
    days = rng.integers(1, 3 * 365, N_CASES)
    rate = rng.uniform(-0.01, 0.08, N_CASES)
    div = rng.uniform(0.0, 0.05, N_CASES)
    sigma = rng.uniform(0.04, 1.5, N_CASES)
    is_call = rng.random(N_CASES) < 0.5
    return spot, strike, days, rate, div, sigma, is_call


def _quantlib_european(spot, strike, days, rate, div, sigma, is_call):
    """Price and greeks from QuantLib's analytic European engine, converted to our units."""
    today = ql.Date(2, 1, 2024)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    out = np.empty((len(spot), 5))
    for i in range(len(spot)):
        process = ql.BlackScholesMertonProcess(
            ql.QuoteHandle(ql.SimpleQuote(float(spot[i]))),
            ql.YieldTermStructureHandle(ql.FlatForward(today, float(div[i]), dc)),
            ql.YieldTermStructureHandle(ql.FlatForward(today, float(rate[i]), dc)),
            ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), float(sigma[i]), dc)),
        )
        payoff = ql.PlainVanillaPayoff(ql.Option.Call if is_call[i] else ql.Option.Put, float(strike[i]))
        option = ql.EuropeanOption(payoff, ql.EuropeanExercise(today + int(days[i])))
        option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
        # QuantLib: theta per year, vega per unit of volatility
        out[i] = [option.NPV(), option.delta(), option.gamma(), option.theta() / 365.0, option.vega() / 100.0]
    return out


def test_implied_vol_round_trip_and_greeks_match_quantlib():
    spot, strike, days, rate, div, sigma, is_call = _random_cases(7)
    t = days / 365.0
    ref = _quantlib_european(spot, strike, days, rate, div, sigma, is_call)
    ql_price = ref[:, 0]

    iv = pricing.bs_implied_vol(is_call, ql_price, spot, strike, t, rate, div)
    forward, discount = pricing.forward_and_discount(spot, t, rate, div)
    intrinsic = discount * np.where(is_call, np.maximum(forward - strike, 0), np.maximum(strike - forward, 0))
    # prices at (or, by rounding, a hair below) intrinsic value carry no volatility information
    informative = ql_price - intrinsic > 1e-10 * spot
    assert informative.mean() > 0.9
    assert not np.isnan(iv[informative]).any()
    repriced = pricing.bs_greeks(is_call, spot, strike, t, rate, div, iv).price
    np.testing.assert_allclose(repriced[informative], ql_price[informative], rtol=0, atol=1e-8)

    ours = pricing.bs_greeks(is_call, spot, strike, t, rate, div, sigma)
    for j, name in enumerate(["price", "delta", "gamma", "theta", "vega"]):
        mine, theirs = getattr(ours, name), ref[:, j]
        # relative to the value, except for values at rounding-noise level of the largest one
        np.testing.assert_allclose(mine, theirs, rtol=1e-6, atol=1e-12 * np.abs(theirs).max(), err_msg=name)


def test_black76_price_and_implied_vol_match_quantlib():
    rng = np.random.default_rng(11)
    n = 2000
    forward = rng.uniform(10.0, 5000.0, n)
    strike = forward * np.exp(rng.normal(0.0, 0.3, n))
    t = rng.uniform(1 / 365, 5.0, n)
    discount = np.exp(-rng.uniform(0.0, 0.06, n) * t)
    sigma = rng.uniform(0.02, 2.0, n)
    is_call = rng.random(n) < 0.5
    std_dev = sigma * np.sqrt(t)
    ref = np.array([
        ql.blackFormula(ql.Option.Call if c else ql.Option.Put, float(k), float(f), float(s), float(d))
        for c, k, f, s, d in zip(is_call, strike, forward, std_dev, discount)
    ])
    np.testing.assert_allclose(pricing.black76_price(is_call, forward, strike, t, discount, sigma), ref,
                               rtol=1e-10, atol=1e-12 * forward.max())
    iv = pricing.black76_implied_vol(is_call, ref, forward, strike, t, discount)
    ok = ~np.isnan(iv)
    assert ok.mean() > 0.95
    repriced = pricing.black76_price(is_call, forward, strike, t, discount, iv)
    assert np.all(np.abs(repriced[ok] - ref[ok]) <= 1e-8 * np.maximum(1.0, ref[ok]))


def test_prices_outside_no_arbitrage_bounds_give_nan_and_intrinsic_gives_zero():
    f, k, t, df = 100.0, 90.0, 0.5, 0.99
    call_intrinsic = df * (f - k)
    prices = np.array([call_intrinsic - 1e-6, df * f, df * f + 1, -0.5, call_intrinsic])
    iv = pricing.black76_implied_vol(True, prices, f, k, t, df)
    assert np.isnan(iv[:4]).all()
    assert iv[4] == 0.0
    # puts: upper bound is the discounted strike
    assert np.isnan(pricing.black76_implied_vol(False, df * k, f, k, t, df))
    assert np.isnan(pricing.black76_implied_vol(False, 1.0, f, k, 0.0, df))  # expired


def test_extreme_but_valid_inputs_converge():
    # one-day deep out-of-the-money wings and multi-year near-the-money options
    f = np.array([2900.0, 2900.0, 100.0, 100.0, 100.0])
    k = np.array([2000.0, 3500.0, 100.0, 100.0001, 300.0])
    t = np.array([1 / 365, 1 / 365, 10.0, 0.02, 30.0])
    sigma = np.array([0.9, 0.6, 0.15, 0.001, 0.05])
    is_call = np.array([False, True, True, True, True])
    price = pricing.black76_price(is_call, f, k, t, 1.0, sigma)
    iv = pricing.black76_implied_vol(is_call, price, f, k, t, 1.0)
    np.testing.assert_allclose(pricing.black76_price(is_call, f, k, t, 1.0, iv), price, rtol=1e-10, atol=1e-13)


def test_read_only_inputs_are_accepted():
    arrays = [np.array([100.0, 100.0]), np.array([95.0, 105.0]), np.array([0.25, 0.25]), np.array([0.99, 0.99])]
    price = np.array([7.0, 7.0])
    for a in [*arrays, price]:
        a.setflags(write=False)
    calls = np.array([True, False])
    calls.setflags(write=False)
    iv = pricing.black76_implied_vol(calls, price, *arrays)
    assert np.isfinite(iv).all()


def test_table_guess_solver_agrees_with_the_2006_solver_inside_and_outside_its_tables():
    """The fast solver (tabulated guess + Householder) against the 2006 solver it is built from,
    over log-moneyness from 1e-7 to 30 (the tables span 1e-5 to 20) and total volatility from
    0.001 to 20, calls and puts, in and out of the money."""
    from backtest import pricing_nb

    rng = np.random.default_rng(3)
    n = 20_000
    log_moneyness = np.exp(rng.uniform(np.log(1e-7), np.log(30.0), n)) * rng.choice([-1.0, 1.0], n)
    forward = 100.0
    strike = forward * np.exp(log_moneyness)
    t = rng.uniform(0.002, 5.0, n)
    sigma = np.exp(rng.uniform(np.log(1e-3), np.log(20.0), n)) / np.sqrt(t)
    is_call = rng.random(n) < 0.5
    price = pricing.black76_price(is_call, forward, strike, t, 0.97, sigma)
    fast = pricing.black76_implied_vol(is_call, price, forward, strike, t, 0.97)
    reference = np.empty(n)
    pricing_nb.black_implied_vol_2006_array(is_call, price, np.full(n, forward), strike, t, np.full(n, 0.97), reference)
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(reference))
    # above a total volatility of ~5 the price is within rounding of its bound and many
    # volatilities reprice it exactly, so the two solvers' answers are compared below that
    solved = (reference > 0) & (sigma * np.sqrt(t) < 5.0)
    assert solved.mean() > 0.5  # the rest: prices at their bounds in floating point, or s >= 5
    np.testing.assert_allclose(fast[solved], reference[solved], rtol=1e-10)
    repriced = pricing.black76_price(is_call, forward, strike, t, 0.97, fast)
    ok = ~np.isnan(fast)
    assert np.all(np.abs(repriced[ok] - price[ok]) <= 1e-10 * np.maximum(1.0, price[ok]))


def test_fill_greeks_fills_only_missing_values_with_bs_greeks_values():
    rng = np.random.default_rng(7)
    n = 500
    is_call = rng.random(n) < 0.5
    spot, strike = rng.uniform(50, 150, n), rng.uniform(50, 150, n)
    t, sigma = rng.uniform(0.0, 2.0, n), rng.uniform(0.05, 1.0, n)
    t[:10] = 0.0  # expiration day: no greeks
    full = pricing.bs_greeks(is_call, spot, strike, t, 0.03, 0.01, sigma)
    vendor = {name: rng.uniform(-1, 1, n) for name in pricing.GREEKS}
    for values in vendor.values():
        values[rng.random(n) < 0.3] = np.nan
    missing = {name: np.isnan(v) for name, v in vendor.items()}
    filled = {name: v.copy() for name, v in vendor.items()}
    pricing.fill_greeks(is_call, spot, strike, t, 0.03, 0.01, sigma, filled)
    for name, values in filled.items():
        expected = np.where(missing[name], getattr(full, name), vendor[name])
        np.testing.assert_array_equal(values, expected)  # bit for bit
    pricing.fill_greeks(is_call, spot, strike, t, 0.03, 0.01, sigma, filled, fill_all=True)
    for name, values in filled.items():
        np.testing.assert_array_equal(values, getattr(full, name))
    with pytest.raises(ValueError, match="writable float64"):
        pricing.fill_greeks(is_call, spot, strike, t, 0.03, 0.01, sigma, {**filled, "vega": np.zeros(3)})
