package org.outpost.field.shared

import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import org.outpost.core.EntitlementView
import org.outpost.core.Member
import org.outpost.core.OutpostException
import org.outpost.core.OutpostInterface
import org.outpost.core.PayoutInput
import org.outpost.core.ProofInput

/** How the collector proves who they are, as the payout screen offers it. */
sealed interface Proof {
    data class Card(val qrText: String) : Proof
    data class AgentPin(val pin: String) : Proof
    data class Signature(val reference: String) : Proof
    data class Photo(val reference: String) : Proof
}

data class PayoutState(
    val entitlement: EntitlementView? = null,
    val collectors: List<Member> = emptyList(),
    val collectorId: String? = null,
    val amountText: String = "",
    val proof: Proof? = null,
    val overrideReason: String? = null,
    val error: String? = null,
    /** The payroll was already paid on this phone: the agent may pay again only with a reason. */
    val needsOverride: Boolean = false,
    val paidRecordId: String? = null,
) {
    val canConfirm: Boolean
        get() = entitlement != null && collectorId != null && proof != null && amountText.isNotBlank() && paidRecordId == null
}

/** Payout: pick the collector, confirm the amount, capture proof, pay. */
class PayoutModel(private val core: OutpostInterface) {
    private val once = OneAtATime()
    private val _state = MutableStateFlow(PayoutState())
    val state: StateFlow<PayoutState> = _state

    fun start(beneficiaryId: String, entitlementId: String) {
        val detail = attempt { core.beneficiary(beneficiaryId) }.getOrElse {
            _state.value = PayoutState(error = it.message)
            return
        }
        val e = detail.entitlements.firstOrNull { it.id == entitlementId }
        val collectors = detail.members.filter { it.mayCollect || it.id == e?.recipientId }
        _state.value = PayoutState(
            entitlement = e,
            collectors = collectors,
            collectorId = e?.recipientId?.takeIf { id -> collectors.any { it.id == id } } ?: collectors.firstOrNull()?.id,
            amountText = e?.let { MoneyText.format(it.remainingMinor, it.amount.currency).substringBefore(' ') } ?: "",
            error = if (e == null) "This entitlement is not on the phone" else null,
        )
    }

    fun chooseCollector(id: String) { _state.value = _state.value.copy(collectorId = id) }
    fun setAmount(text: String) { _state.value = _state.value.copy(amountText = text) }
    fun setProof(proof: Proof?) { _state.value = _state.value.copy(proof = proof) }
    fun setOverride(reason: String?) { _state.value = _state.value.copy(overrideReason = reason) }

    /** Pays; a second call while one runs (a double tap) does nothing. */
    fun confirm(): Boolean = once.run { pay() } ?: false

    private fun pay(): Boolean {
        val s = _state.value
        if (s.paidRecordId != null) return false
        val e = s.entitlement ?: return false
        val amount = MoneyText.parse(s.amountText, e.amount.currency)
        if (amount == null) {
            _state.value = s.copy(error = "\"${s.amountText}\" is not an amount")
            return false
        }
        val proof = when (val p = s.proof) {
            is Proof.Card -> ProofInput.Card(p.qrText)
            is Proof.AgentPin -> ProofInput.AgentPin(p.pin)
            is Proof.Signature -> ProofInput.Signature(p.reference)
            is Proof.Photo -> ProofInput.Photo(p.reference)
            null -> { _state.value = s.copy(error = "Capture a proof of identity"); return false }
        }
        return try {
            val id = core.pay(PayoutInput(e.id, s.collectorId ?: "", amount, e.amount.currency, proof, s.overrideReason))
            _state.value = s.copy(paidRecordId = id, error = null, needsOverride = false)
            true
        } catch (x: OutpostException.AlreadyPaid) {
            _state.value = s.copy(error = x.message, needsOverride = true)
            false
        } catch (x: OutpostException) {
            _state.value = s.copy(error = x.message)
            false
        }
    }
}
