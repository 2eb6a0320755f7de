package org.outpost.field

import java.util.Locale
import kotlin.test.assertEquals
import kotlin.test.assertNull
import org.junit.jupiter.api.Test
import org.outpost.field.shared.MoneyText
import org.outpost.field.shared.OneAtATime

class MoneyTextTest {
    @Test
    fun `minor units are shown and read back`() {
        assertEquals("15,000.00 MWK", MoneyText.format(1_500_000, "MWK"))
        assertEquals("-0.05 MWK", MoneyText.format(-5, "MWK"))
        assertEquals("25,000 XOF", MoneyText.format(25_000, "XOF"))
        assertEquals(1_500_050L, MoneyText.parse("15,000.50", "MWK"))
        assertEquals(1_500_000L, MoneyText.parse("15000", "MWK"))
        assertEquals(25_000L, MoneyText.parse("25 000", "XOF"))
        assertNull(MoneyText.parse("12.5", "XOF"))
        assertNull(MoneyText.parse("1.234", "MWK"))
        assertNull(MoneyText.parse("ten", "MWK"))
        assertNull(MoneyText.parse("-5", "MWK"))
        // A decimal comma is refused, not read as a thousands separator (12,5 is not 125).
        assertNull(MoneyText.parse("12,5", "MWK"))
        assertNull(MoneyText.parse("50000,00", "MWK"))
        assertEquals(1_234_567_00L, MoneyText.parse("1,234,567", "MWK"))
        assertEquals(1_500_000L, MoneyText.parse("15\u00A0000", "MWK"))
        // Too large to count is refused, not wrapped around.
        assertNull(MoneyText.parse("184467440737095517", "MWK"))
    }

    @Test
    fun `the phone's language does not change how amounts look`() {
        val before = Locale.getDefault()
        try {
            for (tag in listOf("de-DE", "fr-FR", "pt-BR", "ar-EG")) {
                Locale.setDefault(Locale.forLanguageTag(tag))
                assertEquals("15,000.00 MWK", MoneyText.format(1_500_000, "MWK"), tag)
                assertEquals(1_500_000L, MoneyText.parse(MoneyText.format(1_500_000, "MWK").substringBefore(' '), "MWK"), tag)
            }
        } finally {
            Locale.setDefault(before)
        }
    }

    @Test
    fun `a second tap while a write runs does nothing`() {
        val once = OneAtATime()
        val started = java.util.concurrent.CountDownLatch(1)
        val release = java.util.concurrent.CountDownLatch(1)
        var writes = 0
        val first = Thread {
            once.run {
                writes++
                started.countDown()
                release.await()
            }
        }
        first.start()
        started.await()
        assertNull(once.run { writes++ }, "the second tap is ignored")
        release.countDown()
        first.join()
        assertEquals(1, writes)
        assertEquals(2, once.run { writes++; writes })
    }
}
