package org.outpost.field.shared

import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import org.outpost.core.DaySummary
import org.outpost.core.OutpostException
import org.outpost.core.OutpostInterface
import org.outpost.core.SyncListener
import org.outpost.core.SyncPhase
import org.outpost.core.SyncProgressInfo
import org.outpost.core.SyncReport
import org.outpost.core.SyncStatus

data class SyncState(
    val status: SyncStatus? = null,
    val running: Boolean = false,
    val phase: SyncPhase? = null,
    /** 0..1 while uploading (the only phase with a known total), else null. */
    val fraction: Float? = null,
    val items: Long = 0,
    val bytes: Long = 0,
    val lastReport: SyncReport? = null,
    val error: String? = null,
    /** The office revoked this phone: its data is gone and it must be enrolled again. */
    val revoked: Boolean = false,
) {
    /** The line under the sync button. Never "up to date" while a record waits. */
    val headline: String
        get() = when {
            revoked -> "This phone was revoked"
            running -> "Syncing…"
            status == null -> ""
            status.pending > 0uL -> "${status.pending} records waiting to be sent"
            status.upToDate -> "Up to date"
            else -> "Not synced yet"
        }
}

/** The sync screen and the background worker share this: progress, status, cancel. */
class SyncModel(private val core: OutpostInterface) {
    private val _state = MutableStateFlow(SyncState())
    val state: StateFlow<SyncState> = _state

    fun refresh() {
        _state.value = _state.value.copy(status = attempt { core.syncStatus() }.getOrNull())
    }

    /** Runs a whole sync on the calling thread, publishing progress as it goes. */
    fun sync(): Boolean {
        _state.value = _state.value.copy(running = true, error = null, phase = SyncPhase.CONNECTING)
        val listener = object : SyncListener {
            override fun onProgress(progress: SyncProgressInfo) {
                val total = progress.total?.toLong()
                _state.value = _state.value.copy(
                    phase = progress.phase,
                    items = progress.items.toLong(),
                    fraction = if (total != null && total > 0) progress.items.toFloat() / total else null,
                    bytes = (progress.bytesSent + progress.bytesReceived).toLong(),
                )
            }
        }
        return try {
            val report = core.sync(listener)
            _state.value = _state.value.copy(running = false, lastReport = report, status = report.status, phase = SyncPhase.DONE)
            true
        } catch (e: OutpostException.Revoked) {
            _state.value = _state.value.copy(running = false, revoked = true, error = e.message, status = null)
            false
        } catch (e: OutpostException) {
            _state.value = _state.value.copy(running = false, error = e.message, status = attempt { core.syncStatus() }.getOrNull())
            false
        }
    }

    fun cancel() = core.cancelSync()
}

/** The agent's day at a glance. */
class SummaryModel(private val core: OutpostInterface) {
    private val once = OneAtATime()
    private val _state = MutableStateFlow<Result<DaySummary>?>(null)
    val state: StateFlow<Result<DaySummary>?> = _state

    fun load(day: String? = null) {
        _state.value = attempt { core.daySummary(day) }
    }

    /** Records cash received; null when done, else why not. A double tap records it once. */
    fun receiveCash(amountText: String, currency: String, note: String): String? {
        val minor = MoneyText.parse(amountText, currency) ?: return "\"$amountText\" is not an amount"
        val outcome = once.run { attempt { core.recordCash(true, minor, currency, note) } }
            ?: return "Already recording"
        load()
        return outcome.exceptionOrNull()?.message
    }

    fun receiveStock(item: String, quantity: Long, note: String): String? =
        attempt { core.recordStock(true, item, quantity, note) }.exceptionOrNull()?.message.also { load() }
}
