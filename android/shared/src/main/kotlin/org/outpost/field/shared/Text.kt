package org.outpost.field.shared

import java.util.Locale
import java.util.concurrent.atomic.AtomicBoolean
import org.outpost.core.OutpostException

/** Amounts travel as integer minor units; this shows them the way a cashier reads them. */
object MoneyText {
    /** ISO 4217 currencies with no minor unit (the rest have two, as MWK does). */
    private val noDecimals = setOf("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF")

    /** Digits, optionally grouped by threes with commas or spaces, then up to two decimals. */
    private val amount = Regex("""(\d{1,3}(?:[, ]\d{3})+|\d+)(?:\.(\d{1,2}))?""")

    /** Always the same shape, whatever the phone's language: "15,000.00 MWK". */
    fun format(minor: Long, currency: String): String {
        if (currency in noDecimals) return String.format(Locale.ROOT, "%,d %s", minor, currency)
        val sign = if (minor < 0) "-" else ""
        val abs = Math.abs(minor)
        return String.format(Locale.ROOT, "%s%,d.%02d %s", sign, abs / 100, abs % 100, currency)
    }

    /**
     * Reads what an agent typed ("1500", "1,500.50", "1 500") as minor units; null if it is
     * not plainly money. A comma is only a thousands separator (so "12,5" is refused rather
     * than read as 125), and amounts too large to count are refused.
     */
    fun parse(text: String, currency: String): Long? {
        val clean = text.trim().replace('\u00A0', ' ').replace('\u202F', ' ')
        val m = amount.matchEntire(clean) ?: return null
        val whole = m.groupValues[1].filter(Char::isDigit)
        val fraction = m.groupValues[2]
        return try {
            val w = whole.toLong()
            if (currency in noDecimals) {
                if (fraction.isNotEmpty()) null else w
            } else {
                Math.addExact(Math.multiplyExact(w, 100L), fraction.padEnd(2, '0').ifEmpty { "0" }.toLong())
            }
        } catch (e: NumberFormatException) {
            null
        } catch (e: ArithmeticException) {
            null
        }
    }
}

/**
 * Lets one write run at a time: a second tap on "Confirm" while the first payout is being
 * written is ignored instead of paying twice.
 */
class OneAtATime {
    private val running = AtomicBoolean(false)

    val busy: Boolean get() = running.get()

    /** Runs `block` unless a call is already running; null when it did not run. */
    fun <T> run(block: () -> T): T? {
        if (!running.compareAndSet(false, true)) return null
        try {
            return block()
        } finally {
            running.set(false)
        }
    }
}

/**
 * Runs a core call; a refusal becomes a failure whose message is the core's sentence, written
 * for a field agent to read. Anything else (a bug) is not caught here.
 */
inline fun <T> attempt(block: () -> T): Result<T> =
    try {
        Result.success(block())
    } catch (e: OutpostException) {
        Result.failure(e)
    }
