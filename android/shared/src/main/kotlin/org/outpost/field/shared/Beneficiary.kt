package org.outpost.field.shared

import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import org.outpost.core.BeneficiaryDetail
import org.outpost.core.EntitlementView
import org.outpost.core.OutpostInterface

data class BeneficiaryState(
    val detail: BeneficiaryDetail? = null,
    val error: String? = null,
) {
    /** Entitlements with cash still to pay. */
    val payable: List<EntitlementView>
        get() = detail?.entitlements.orEmpty().filter { it.status == "DUE" && it.remainingMinor > 0 }

    /** Entitlements with goods still to hand out. */
    val goodsDue: List<EntitlementView>
        get() = detail?.entitlements.orEmpty().filter { e -> e.status == "DUE" && e.goodsRemaining.any { it.quantity > 0 } }

    val active: Boolean get() = detail?.summary?.status == "ACTIVE"
}

class BeneficiaryModel(private val core: OutpostInterface) {
    private val _state = MutableStateFlow(BeneficiaryState())
    val state: StateFlow<BeneficiaryState> = _state

    fun load(id: String) {
        val detail = attempt { core.beneficiary(id) }
        _state.value = BeneficiaryState(detail.getOrNull(), detail.exceptionOrNull()?.message)
    }
}
