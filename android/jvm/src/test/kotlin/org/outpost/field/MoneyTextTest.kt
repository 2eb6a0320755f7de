package org.outpost.field

import kotlin.test.assertEquals
import kotlin.test.assertNull
import org.junit.jupiter.api.Test
import org.outpost.field.shared.MoneyText

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
    }
}
