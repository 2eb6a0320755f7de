package org.outpost.field.shared

import org.outpost.core.OutpostException

/** Amounts travel as integer minor units; this shows them the way a cashier reads them. */
object MoneyText {
    /** ISO 4217 currencies with no minor unit (the rest have two, as MWK does). */
    private val noDecimals = setOf("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF")

    fun format(minor: Long, currency: String): String {
        if (currency in noDecimals) return "%,d %s".format(minor, currency)
        val sign = if (minor < 0) "-" else ""
        val abs = Math.abs(minor)
        return "%s%,d.%02d %s".format(sign, abs / 100, abs % 100, currency)
    }

    /** Reads what an agent typed ("1500", "1,500.50") as minor units; null if it is not money. */
    fun parse(text: String, currency: String): Long? {
        val clean = text.trim().replace(",", "").replace(" ", "")
        if (clean.isEmpty() || !clean.matches(Regex("""\d+(\.\d{1,2})?"""))) return null
        if (currency in noDecimals) return if (clean.contains('.')) null else clean.toLongOrNull()
        val (whole, fraction) = clean.split('.').let { it[0] to it.getOrElse(1) { "" } }
        val w = whole.toLongOrNull() ?: return null
        return w * 100 + fraction.padEnd(2, '0').toLong()
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
